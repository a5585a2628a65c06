"""Service configuration: defaults < environment (``SDZE_*``) < explicit keyword arguments (the CLI)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sdze_core.spec import MAX_DIM

ENV_PREFIX = "SDZE_"


class Settings(BaseModel):
    """Every setting of the job service; ``docs/api.md`` lists them with their defaults."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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
    max_eval_bytes: int = Field(64 << 20, ge=1024, description="largest evaluate body (JSON or .npy)")
    max_eval_points: int = Field(100_000, ge=1, description="most points per evaluate call")
    tokens: list[str] = Field(default_factory=list, description="bearer tokens; required when non-empty")
    ray_address: str | None = Field(None, description="Ray cluster to attach to; default RAY_ADDRESS or a local Ray")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the in-process local Ray (default: all)")
    progress_interval_s: float = Field(0.5, gt=0, le=3600, description="least seconds between stored step events")
    retry_after_s: int = Field(30, ge=1, description="Retry-After seconds sent with 429")
    max_attempts: int = Field(3, ge=1, le=100, description="runs of a job (restarts resume) before it fails")

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, v: object) -> object:
        if isinstance(v, str):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("tokens")
    @classmethod
    def _token_shape(cls, v: list[str]) -> list[str]:
        for t in v:
            if len(t) < 8 or any(c.isspace() for c in t):
                raise ValueError("tokens need at least 8 characters and no spaces")
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
        return cls.model_validate(values)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
