"""Builds every service object from the settings, and closes what it opened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx2
from redis.asyncio import Redis

from service import metrics
from service.accounts import AccountService
from service.agents import AgentService
from service.audit import AuditLog
from service.confirmations import ConfirmationService
from service.devices import DeviceCookies
from service.events import EventBus
from service.limits import Limit, RateLimiter
from service.mfa import MfaService
from service.notices import NoticeWorker, ReportLinks
from service.oidc import (
    AccessTokens,
    CustomerProvider,
    LinkedAccounts,
    ProviderKeys,
    SignInCodes,
)
from service.passkeys import Passkeys
from service.passwords import PasswordHasher
from service.persistence.db import Database
from service.pins import PinService
from service.redis_store import Keys, RedisStore, make_client
from service.reports import ReportService
from service.self_service import ResetLinks, SelfService
from service.sessions import SessionStore
from service.settings import RATE_LIMIT_NAMES, Settings
from service.staff import StaffService
from service.verifications import VerificationService


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: RedisStore
    audit: AuditLog
    accounts: AccountService
    agents: AgentService
    sessions: SessionStore
    pins: PinService
    limits: RateLimiter
    verifications: VerificationService
    mfa: MfaService
    devices: DeviceCookies
    staff: StaffService
    sign_in_codes: SignInCodes
    events: EventBus
    confirmations: ConfirmationService
    notices: NoticeWorker
    reports: ReportService
    self_service: SelfService
    passkeys: Passkeys
    http: httpx2.AsyncClient
    # The customers' OpenID Connect provider (None unless OIDC_ISSUER is set).
    oidc: CustomerProvider | None = None

    async def check_ready(self) -> dict[str, bool]:
        """Ask both stores, at once, whether they answer."""
        results = await asyncio.gather(self.db.ping(), self.redis.ping(), return_exceptions=True)
        return {
            "postgres": not isinstance(results[0], BaseException),
            "redis": not isinstance(results[1], BaseException),
        }

    async def close(self) -> None:
        # Voids still owed for answers that were errors get a last chance to be written.
        await self.audit.settle(self.settings.db_timeout_seconds * 2)
        await self.notices.stop()
        # Before Redis: publications still under way must finish (or stop) on open
        # connections, not open new ones on a closed pool.
        await self.events.close()
        closing = [self.db.close(), self.redis.close(), self.http.aclose()]
        if self.oidc is not None:
            closing.append(self.oidc.close())
        await asyncio.gather(*closing, return_exceptions=True)


async def open_services(settings: Settings) -> Services:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("DATABASE_URL and REDIS_URL must be set (or use `support-pin serve`)")
    db = await Database.connect(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_timeout_seconds,
        on_error=metrics.record_store_error,
    )
    redis = RedisStore(
        make_client(
            settings.redis_url,
            cluster=settings.redis_cluster,
            timeout=settings.redis_timeout_seconds,
            pool_size=settings.redis_pool_size,
        ),
        Keys(settings.redis_key_prefix),
        timeout=settings.redis_timeout_seconds,
        on_error=metrics.record_store_error,
    )
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(10.0), follow_redirects=False)
    links = ReportLinks(settings.keys.report_link, settings.public_url)
    reset_links = ResetLinks(settings.keys.reset_link, settings.public_url)
    worker = NoticeWorker(
        db,
        links,
        reset_links,
        smtp_url=settings.smtp_url.get_secret_value() if settings.smtp_url else None,
        mail_from=settings.mail_from,
        webhook_url=settings.webhook_url,
        webhook_secret=(
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        ),
        http=http,
    )
    audit = AuditLog(
        db,
        notices=worker.rule,
        on_notice=worker.wake,
    )
    keys = settings.keys
    hasher = PasswordHasher(settings.password_hash_concurrency)
    accounts = AccountService(db, hasher)
    sessions = SessionStore(redis, keys.session, settings.session_ttl_seconds)
    limits = RateLimiter(
        redis,
        keys.rate_limit,
        **{
            name: Limit.from_setting(name, getattr(settings, f"rate_limit_{name}"))
            for name in RATE_LIMIT_NAMES
        },
        sign_in_max_failures=settings.sign_in_max_failures,
        sign_in_lock_seconds=settings.sign_in_lock_seconds,
    )
    events = EventBus(
        redis,
        # Subscriptions are per connection: one plain connection (to one node of a cluster,
        # where classic pub/sub reaches every node), whose reads wait for messages.
        Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout_seconds,
            health_check_interval=30,
            client_name="support-pin-events",
        ),
    )
    pins = PinService(
        redis,
        audit,
        limits,
        pin_key=keys.pin,
        length=settings.pin_length,
        ttl_seconds=settings.pin_ttl_seconds,
        max_attempts=settings.pin_max_attempts,
        account_max_failures=settings.account_max_failures,
        account_lock_seconds=settings.account_lock_seconds,
        require_mfa=settings.oidc_require_mfa,
        events=events,
        contact_window_seconds=settings.contact_window_seconds,
    )
    oidc = None
    if settings.oidc_issuer:
        # Bounded: a slow provider must not hold requests longer than a store would.
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(5.0), follow_redirects=False)
        provider_keys = ProviderKeys(settings.oidc_issuer, http)
        oidc = CustomerProvider(
            keys=provider_keys,
            tokens=AccessTokens(provider_keys, settings.oidc_token_audience),
            accounts=LinkedAccounts(db, provider_keys.issuer),
            http=http,
        )
    return Services(
        settings=settings,
        db=db,
        redis=redis,
        audit=audit,
        accounts=accounts,
        agents=AgentService(db, audit),
        sessions=sessions,
        pins=pins,
        limits=limits,
        verifications=VerificationService(
            limits, accounts, pins, audit, oidc.accounts if oidc is not None else None
        ),
        devices=DeviceCookies(keys.device),
        mfa=MfaService(
            db,
            redis,
            audit,
            sessions,
            accounts,
            totp_key=keys.totp,
            recovery_key=keys.recovery_code,
            mfa_token_key=keys.mfa_token,
            issuer=settings.mfa_totp_issuer,
            token_ttl_seconds=settings.mfa_token_ttl_seconds,
            token_max_attempts=settings.mfa_token_max_attempts,
            account_max_failures=settings.mfa_account_max_failures,
            lock_seconds=settings.mfa_lock_seconds,
        ),
        sign_in_codes=SignInCodes(redis, keys.sign_in_flow),
        events=events,
        notices=worker,
        reports=ReportService(redis, audit, links, pins, sessions, events),
        self_service=SelfService(
            db,
            redis,
            audit,
            accounts,
            hasher,
            sessions,
            pins,
            events,
            limits,
            reset_links,
        ),
        passkeys=Passkeys(db, redis, audit, sessions),
        http=http,
        confirmations=ConfirmationService(
            redis,
            audit,
            limits,
            pins,
            events,
            code_key=keys.confirmation_code,
            contact_window_seconds=settings.contact_window_seconds,
            request_seconds=settings.confirmation_ttl_seconds,
        ),
        staff=StaffService(
            db,
            redis,
            audit,
            hasher,
            session_key=keys.staff_session,
            setup_key=keys.staff_setup,
            mfa_token_key=keys.staff_mfa_token,
            totp_key=keys.totp,
            session_ttl_seconds=settings.staff_session_ttl_seconds,
            totp_issuer=settings.mfa_totp_issuer,
            token_ttl_seconds=settings.mfa_token_ttl_seconds,
            token_max_attempts=settings.mfa_token_max_attempts,
            max_failures=settings.mfa_account_max_failures,
            lock_seconds=settings.mfa_lock_seconds,
        ),
        oidc=oidc,
    )
