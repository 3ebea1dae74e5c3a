"""The Kafka Connect peer: a 4.1 standalone worker with the Debezium JDBC sink 3.4.0.Final.

Both come from Maven Central like the stack's Kafka (bench/peers/connect-pom.xml, resolved once
into the peers' cache). The worker reads JsonConverter records with their schema and the
connector inserts them in batches of 5,000 into a table it creates (`schema.evolution=basic`),
which is how a Connect user lands JSON records in PostgreSQL without writing code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from bench.peers.cache import cache_dir, one_line_error

POM = Path(__file__).with_name("connect-pom.xml")
WORKER_CLASS = "org.apache.kafka.connect.cli.ConnectStandalone"
TASK_DIED = "Task is being killed and will not recover"
"""What the worker logs when the connector's task failed for good (the process lives on)."""
LOG4J2 = """\
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{HH:mm:ss.SSS} %p %c{1}: %m%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.task.name = org.apache.kafka.connect.runtime.WorkerSinkTask
logger.task.level = error
"""


def versions() -> tuple[str, str]:
    """(Kafka Connect, Debezium) versions named by the pom."""
    text = POM.read_text()

    def prop(name: str) -> str:
        return text.split(f"<{name}>", 1)[1].split("<", 1)[0]

    return prop("connect.version"), prop("debezium.version")


def jars_dir() -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"connect-{digest}"


def ensure_connect(say: Callable[[str], None]) -> Path:
    """`<dir>/worker/*.jar` (class path) and `<dir>/plugins/debezium-jdbc/` (plugin.path),
    resolved with Maven once per pom version; later calls return at once."""
    root = jars_dir()
    if (root / ".resolved").exists():
        return root
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(
            "Kafka Connect's jars come from Maven Central: install Maven (apt-get install maven)"
        )
    connect, debezium = versions()
    say(f"fetching Kafka Connect {connect} + Debezium JDBC sink {debezium} jars (once) ...")
    tmp = root.with_name(root.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log = cache_dir() / "connect-jars.log"
    try:
        for profile, target in (("worker", tmp / "worker"), ("plugin", tmp / "plugins" / "jdbc")):
            with log.open("wb") as out:
                done = subprocess.run(
                    [
                        *(mvn, "-B", "-q", "-f", str(POM), "-P", profile),
                        *("dependency:copy-dependencies", f"-Dpeer.lib.dir={target}"),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cache_dir(),
                    check=False,
                )
            if done.returncode != 0 or not any(target.glob("*.jar")):
                raise RuntimeError(
                    f"Maven could not fetch the {profile} jars of Kafka Connect {connect} /"
                    f" Debezium {debezium} ({one_line_error(log)}); check Maven Central is"
                    f" reachable (mvn -f {POM} -P {profile} dependency:copy-dependencies)"
                )
        (tmp / ".resolved").write_text(f"{connect} {debezium}\n")
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("Kafka Connect needs Java 17+: apt-get install openjdk-17-jre-headless")
    return found


def worker_properties(bootstrap: str, workdir: Path, jars: Path, rest_port: int) -> str:
    return f"""\
bootstrap.servers={bootstrap}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
offset.storage.file.filename={workdir / "connect.offsets"}
offset.flush.interval.ms=10000
plugin.path={jars / "plugins"}
plugin.discovery=service_load
listeners=http://127.0.0.1:{rest_port}
consumer.max.poll.records=5000
consumer.auto.offset.reset=earliest
"""


def connector_properties(name: str, topic: str, dsn: str, schema: str) -> str:
    """The JDBC sink into `schema.samples` (created by the connector)."""
    info = conninfo_to_dict(dsn)
    url = (
        f"jdbc:postgresql://{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}"
        f"/{info.get('dbname', 'postgres')}?currentSchema={schema}"
    )
    return f"""\
name={name}
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=1
topics={topic}
connection.url={url}
connection.username={info.get("user", "")}
connection.password={info.get("password", "")}
insert.mode=insert
primary.key.mode=none
schema.evolution=basic
collection.name.format={schema}.samples
batch.size=5000
"""


def connect_argv(jars: Path, workdir: Path, worker: Path, connector: Path) -> list[str]:
    log4j = workdir / "log4j2.properties"
    log4j.write_text(LOG4J2)
    classpath = os.pathsep.join(str(j) for j in sorted((jars / "worker").glob("*.jar")))
    return [
        java(),
        "-Xms256m",
        "-Xmx1g",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath,
        WORKER_CLASS,
        str(worker),
        str(connector),
    ]
