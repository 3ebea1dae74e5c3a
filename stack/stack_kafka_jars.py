"""Kafka's jars and JVM: java, the jars resolved by Maven (cached), class path, CDS archive."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from stack_procs import apt_install, run
from stack_settings import LIB_DIR, POM, STACK_SRC, StackError, say


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        apt_install(["openjdk-17-jre-headless"], "Java 17+ is needed for Kafka")
        found = shutil.which("java")
    if not found:
        raise StackError(
            "java not found; install Java 17+ (apt-get install openjdk-17-jre-headless)"
        )
    return found


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise StackError(f"{POM}: no <kafka.version> property")
    return match.group(1)


def ensure_kafka_jars() -> None:
    """Resolve the Kafka jars once (cached by the pom's hash); later calls return at once."""
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    stamp = LIB_DIR / ".resolved"
    with contextlib.suppress(OSError):
        if stamp.read_text().strip() == pom_hash:
            return
    mvn = shutil.which("mvn")
    if not mvn:
        apt_install(["maven"], "Maven fetches the Kafka jars")
        mvn = shutil.which("mvn")
    if not mvn:
        raise StackError("mvn not found; install Maven (apt-get install maven)")
    version = kafka_version()
    say(f"fetching Kafka {version} jars from Maven Central into {LIB_DIR} (once) ...")
    started = time.monotonic()
    tmp = LIB_DIR.with_name(f".lib.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dstack.lib.dir={tmp}",
            ],
            what="mvn dependency:copy-dependencies",
            cwd=STACK_SRC,
        )
        if not list(tmp.glob(f"kafka_2.13-{version}.jar")):
            raise StackError(f"Maven finished but {tmp} has no kafka_2.13-{version}.jar")
        (tmp / ".resolved").write_text(pom_hash + "\n")
        shutil.rmtree(LIB_DIR, ignore_errors=True)
        os.replace(tmp, LIB_DIR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"Kafka jars ready ({time.monotonic() - started:.1f} s)")


def kafka_classpath() -> str:
    """Every jar, sorted: a stable class path is what lets the class-data archive match."""
    return os.pathsep.join(str(jar) for jar in sorted(LIB_DIR.glob("*.jar")))


def kafka_cds_args(java: str) -> list[str]:
    """JVM flags for an application class-data-sharing archive: Kafka starts ~2x faster.

    The first run records one at its (clean) exit into a `.pending` file; the next start checks
    it with `-Xshare:on` (a truncated archive would crash the JVM) and promotes it. Keyed by the
    java binary and the jar set, so a JDK upgrade or a new Kafka version makes a fresh one.
    """
    java_real = Path(os.path.realpath(java))
    stamp = (LIB_DIR / ".resolved").read_text().strip() if (LIB_DIR / ".resolved").exists() else ""
    key_src = f"{java_real}:{java_real.stat().st_mtime_ns}:{stamp}"
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    archive = LIB_DIR / f"kafka-{key}.jsa"
    pending = LIB_DIR / f"kafka-{key}.jsa.pending"
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}"]
    if pending.exists():
        with tempfile.TemporaryDirectory() as scratch:
            check = subprocess.run(
                [
                    java,
                    "-Xshare:on",
                    f"-XX:SharedArchiveFile={pending}",
                    "-XX:-CreateCoredumpOnCrash",
                    "-cp",
                    kafka_classpath(),
                    "-version",
                ],
                capture_output=True,
                cwd=scratch,
            )
        if check.returncode == 0:
            for old in LIB_DIR.glob("kafka-*.jsa"):
                old.unlink(missing_ok=True)
            os.replace(pending, archive)
            return [f"-XX:SharedArchiveFile={archive}"]
        pending.unlink(missing_ok=True)
    return [f"-XX:ArchiveClassesAtExit={pending}"]
