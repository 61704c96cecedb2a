// Server-Sent Events read with fetch() and a small parser: EventSource cannot send the
// Authorization header, and a bearer token never goes into a URL.

const FIRST_DELAY_MS = 1000;
const LONGEST_DELAY_MS = 30_000;

/** Reads a `text/event-stream` body until it ends, calling `onEvent({ event, data, id })`
 * for each event (`id`: the last one the stream gave, as Last-Event-ID would send it). */
export async function readEventStream(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "";
  let data = [];
  let lastId = "";

  const line = (text) => {
    if (text === "") {
      // A blank line ends an event; one without data lines is none.
      if (data.length) {
        const event = { event: name || "message", data: data.join("\n"), id: lastId };
        try {
          onEvent(event);
        } catch (error) {
          // Reported as the page's error, without ending the stream.
          setTimeout(() => {
            throw error;
          });
        }
      }
      name = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // a comment: the server's keep-alive
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) lastId = value;
  };

  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const at = buffer.search(/[\r\n]/);
      // A "\r" at the very end may be the first half of a "\r\n" still on its way.
      if (at < 0 || (buffer[at] === "\r" && at === buffer.length - 1)) break;
      line(buffer.slice(0, at));
      buffer = buffer.slice(at + (buffer[at] === "\r" && buffer[at + 1] === "\n" ? 2 : 1));
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Follows the event stream at `path` with the bearer `token`: reconnects when it ends or
 * breaks (after 1 s, doubling up to 30 s, with jitter), sending Last-Event-ID so that what
 * was missed comes first.
 *
 * - `onEvent({ event, data, id })` for every event;
 * - `onOpen(again)` each time the stream opens (`again`: not the first time);
 * - `onRefused(status)` when the service refuses it (a 4xx other than 429): no more tries;
 * - `shouldReconnect()`, asked when the stream ends: false to stop there.
 *
 * Answers `{ close() }`. */
export function followEventStream(path, { token, onEvent, onOpen, onRefused, shouldReconnect }) {
  const controller = new AbortController();
  let closed = false;
  let lastEventId = "";

  async function run() {
    let delay = FIRST_DELAY_MS;
    let opened = 0;
    while (!closed) {
      const headers = { accept: "text/event-stream", authorization: `Bearer ${token}` };
      if (lastEventId) headers["last-event-id"] = lastEventId;
      let response = null;
      try {
        response = await fetch(path, {
          headers,
          credentials: "omit",
          cache: "no-store",
          signal: controller.signal,
        });
      } catch {
        response = null; // no network, or closed
      }
      if (closed) return;
      if (response && !response.ok) {
        response.body?.cancel().catch(() => {});
        if (response.status !== 429 && response.status < 500) {
          closed = true;
          onRefused?.(response.status);
          return;
        }
      } else if (response?.body) {
        delay = FIRST_DELAY_MS;
        onOpen?.(opened > 0);
        opened += 1;
        try {
          await readEventStream(response.body, (event) => {
            if (event.id) lastEventId = event.id;
            onEvent(event);
          });
        } catch {
          // Cut off (a restart, the network, or close()): as if it had ended.
        }
        if (closed) return;
        if (shouldReconnect && !shouldReconnect()) {
          closed = true;
          return;
        }
      }
      await sleep(delay * (0.8 + Math.random() * 0.4));
      delay = Math.min(delay * 2, LONGEST_DELAY_MS);
    }
  }

  run();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
