"""Installation of the local servers (Kafka, FerretDB, PostgreSQL) into a cache dir.

Everything lands outside the repository, in ``$RETURNS_CACHE_DIR`` (default
``~/.cache/tiktok-returns``). Every step is idempotent: a marker file holding a
fingerprint of the inputs makes a second run a few cheap stat/read calls.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("devinfra")

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"  # same as kafka_2.13:4.1.1's own log4j-core runtime dep
FERRETDB_VERSION = "1.24.2"
PG_MAJOR = 15

_KAFKA_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.devinfra</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <!-- kafka_2.13 brings log4j-api/log4j-core but no SLF4J binding (slf4j-api 1.7.x) -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


class InstallError(RuntimeError):
    """An installation step failed."""


@dataclass(frozen=True)
class InstalledPaths:
    """Where the installed server software lives."""

    kafka_libs: Path
    ferretdb_bin: Path
    pg_bindir: Path

    @property
    def kafka_classpath(self) -> str:
        return str(self.kafka_libs / "*")


def cache_dir() -> Path:
    """The cache dir (``$RETURNS_CACHE_DIR`` or ``~/.cache/tiktok-returns``), created."""
    env = os.environ.get("RETURNS_CACHE_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "tiktok-returns"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def ferretdb_source_dir() -> Path:
    """The Go module under ``tools/ferretdb`` (override with ``$RETURNS_FERRETDB_SRC``)."""
    env = os.environ.get("RETURNS_FERRETDB_SRC")
    if env:
        return Path(env).resolve()
    # .../tools/devinfra/src/devinfra/install.py -> .../tools/ferretdb
    return Path(__file__).resolve().parents[3] / "ferretdb"


def pg_bindir() -> Path:
    env = os.environ.get("RETURNS_PG_BINDIR")
    return Path(env) if env else Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")


def _fingerprint(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _marker_ok(marker: Path, fingerprint: str) -> bool:
    try:
        return marker.read_text().strip() == fingerprint
    except OSError:
        return False


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    log.debug("running %s", cmd)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InstallError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )


def install_kafka(cache: Path | None = None) -> Path:
    """Resolve Kafka + runtime deps with Maven into ``<cache>/kafka-<v>/libs``; return libs dir."""
    cache = cache or cache_dir()
    home = cache / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    marker = home / ".installed"
    fp = _fingerprint(_KAFKA_POM.encode())
    if _marker_ok(marker, fp) and (libs / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InstallError("mvn (Apache Maven) not found on PATH")
    t0 = time.monotonic()
    log.info("installing Kafka %s via Maven into %s", KAFKA_VERSION, home)
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_KAFKA_POM)
    tmp_libs = home / "libs.tmp"
    shutil.rmtree(tmp_libs, ignore_errors=True)
    _run(
        [
            mvn,
            "-q",
            "-B",
            f"-Dmaven.repo.local={cache / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp_libs}",
        ],
        cwd=home,
    )
    jars = {p.name for p in tmp_libs.glob("*.jar")}
    for required in (
        f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar",
        f"log4j-core-{LOG4J_VERSION}.jar",
        f"log4j-slf4j-impl-{LOG4J_VERSION}.jar",
    ):
        if required not in jars:
            raise InstallError(f"Maven did not deliver {required}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp_libs.rename(libs)
    marker.write_text(fp)
    log.info("Kafka installed in %.1fs (%d jars)", time.monotonic() - t0, len(jars))
    return libs


def install_ferretdb(cache: Path | None = None) -> Path:
    """Build ``tools/ferretdb`` into ``<cache>/bin/ferretdb-embed-<v>``; return the binary."""
    cache = cache or cache_dir()
    src = ferretdb_source_dir()
    binary = cache / "bin" / f"ferretdb-embed-{FERRETDB_VERSION}"
    marker = binary.with_name(binary.name + ".fingerprint")
    sources = [src / "go.mod", src / "go.sum", src / "main.go"]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        if binary.is_file():  # e.g. installed outside the repo: trust the existing build
            return binary
        raise InstallError(f"FerretDB wrapper sources missing: {missing}")
    fp = _fingerprint(*(p.read_bytes() for p in sources))
    if _marker_ok(marker, fp) and binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise InstallError("go not found on PATH")
    t0 = time.monotonic()
    log.info(
        "building FerretDB %s wrapper into %s (cold build takes ~1 min)", FERRETDB_VERSION, binary
    )
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    env.setdefault("CGO_ENABLED", "0")
    tmp_bin = binary.with_name(binary.name + ".tmp")
    _run([go, "build", "-o", str(tmp_bin), "."], cwd=src, env=env)
    tmp_bin.replace(binary)
    marker.write_text(fp)
    log.info("FerretDB built in %.1fs", time.monotonic() - t0)
    return binary


def install_postgres() -> Path:
    """Make sure PostgreSQL 15 server binaries exist (apt-get if missing); return bin dir."""
    bindir = pg_bindir()
    if (bindir / "initdb").is_file():
        return bindir
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise InstallError(
            f"{bindir}/initdb missing; install PostgreSQL {PG_MAJOR} "
            f"(apt-get install postgresql-{PG_MAJOR}) or set RETURNS_PG_BINDIR"
        )
    log.info("installing postgresql-%d with apt-get", PG_MAJOR)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update"], env=env)
    try:
        _run(
            ["apt-get", "install", "-y", "--no-install-recommends", f"postgresql-{PG_MAJOR}"],
            env=env,
        )
    except InstallError:
        _run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], env=env)
    if not (bindir / "initdb").is_file():
        raise InstallError(f"{bindir}/initdb still missing after apt-get install")
    return bindir


def install() -> InstalledPaths:
    """Install everything (idempotent; a warm second run only checks marker files)."""
    cache = cache_dir()
    return InstalledPaths(
        kafka_libs=install_kafka(cache),
        ferretdb_bin=install_ferretdb(cache),
        pg_bindir=install_postgres(),
    )
