"""Service configuration: defaults < environment (``SDZE_*``) < explicit keyword arguments (the CLI)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sdze_core.spec import MAX_DIM

ENV_PREFIX = "SDZE_"
# Host names a tokenless loopback server answers to (a DNS-rebinding page sends its own name as Host).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "ip6-localhost")


class SettingsError(ValueError):
    """An invalid setting; the message names the variable and never echoes its value (tokens are secrets)."""


class Settings(BaseModel):
    """Every setting of the job service; ``docs/api.md`` lists them with their defaults."""

    # hide_input_in_errors: a rejected value may be a token; pydantic would otherwise print it.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind (0: any free port)")
    data_dir: Path = Field(Path("sdze-data"), description="folder for the SQLite store (and artifacts by default)")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/jobs.db (WAL)")
    artifacts_dir: Path | None = Field(None, description="artifacts root, shared by all nodes; default <data_dir>/jobs")
    max_concurrent_jobs: int = Field(1, ge=1, le=10_000, description="jobs running on Ray at once")
    max_queue: int = Field(100, ge=1, le=1_000_000, description="queued jobs before POST /v1/jobs answers 429")
    max_dim: int = Field(MAX_DIM, ge=3, le=MAX_DIM, description="largest problem.dim accepted")
    max_workers: int = Field(64, ge=1, le=1024, description="largest resources.workers accepted")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body (JSON specs, evaluate JSON)")
    max_eval_bytes: int = Field(64 << 20, ge=1024, description="largest evaluate body in .npy")
    max_eval_json_bytes: int = Field(
        16 << 20, ge=1024, description="largest evaluate body in JSON (parsing JSON costs ~10x a .npy of the same data)"
    )
    max_eval_points: int = Field(100_000, ge=1, description="most points per evaluate call")
    tokens: list[str] = Field(default_factory=list, description="bearer tokens; required when non-empty")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description='Host header names served ("*": any); default without tokens: the loopback names only',
    )
    autoscaling: bool = Field(
        False, description="the Ray cluster grows on demand: queue jobs larger than it is now instead of refusing"
    )
    max_job_memory_bytes: int | None = Field(
        None, ge=1 << 20, description="peak memory one worker of a job may need; default: the nodes' memory"
    )
    max_test_coordinates: float = Field(
        1e12, gt=0, description="largest test_points × dim (one evaluation pass; 1e12 floats take hours)"
    )
    ray_address: str | None = Field(None, description="Ray cluster to attach to; default RAY_ADDRESS or a local Ray")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the in-process local Ray (default: all)")
    progress_interval_s: float = Field(0.5, gt=0, le=3600, description="least seconds between stored step events")
    retry_after_s: int = Field(30, ge=1, description="Retry-After seconds sent with 429")
    max_attempts: int = Field(3, ge=1, le=100, description="runs of a job (restarts resume) before it fails")

    @field_validator("tokens", "allowed_hosts", mode="before")
    @classmethod
    def _split_tokens(cls, v: object) -> object:
        if isinstance(v, str):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("tokens")
    @classmethod
    def _token_shape(cls, v: list[str]) -> list[str]:
        bad = [str(i + 1) for i, t in enumerate(v) if len(t) < 8 or any(c.isspace() for c in t)]
        if bad:  # positions only: the values are secrets
            raise ValueError(f"token(s) {', '.join(bad)} of {len(v)}: each token needs 8+ characters and no spaces")
        return v

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobs.db').resolve()}"

    @property
    def artifacts_root(self) -> Path:
        return (self.artifacts_dir or self.data_dir / "jobs").resolve()

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def host_allowlist(self) -> frozenset[str] | None:
        """Host names to answer (lower case, no port); None: any. Tokenless servers default to loopback names."""
        if "*" in self.allowed_hosts:
            return None
        if self.allowed_hosts:
            return frozenset(h.lower().strip("[]") for h in self.allowed_hosts)
        return None if self.tokens else frozenset(LOOPBACK_HOSTS)

    def check(self) -> None:
        """Refuse a configuration that would expose jobs unauthenticated."""
        if not self.loopback and not self.tokens:
            raise ValueError(
                f"binding {self.host!r} (not loopback) needs bearer tokens: set SDZE_TOKENS=tok1,tok2 or --token"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``SDZE_<NAME>`` variables (and ``RAY_ADDRESS``), then apply non-None ``overrides``."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        if "ray_address" not in values and env.get("RAY_ADDRESS"):
            values["ray_address"] = env["RAY_ADDRESS"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            lines = []
            for err in e.errors(include_input=False, include_url=False):
                name = str(err["loc"][0]) if err["loc"] else "(settings)"
                msg = err["msg"].removeprefix("Value error, ")
                lines.append(f"{ENV_PREFIX}{name.upper()}: {msg}")
            raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
