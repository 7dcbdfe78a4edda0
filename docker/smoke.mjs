// Drives a running Herald container (docker/build-and-smoke.sh): health, the image's
// HEALTHCHECK, a WebSocket echo, JSON logs, the non-root user, and the SIGTERM drain.
import { WebSocket, podman, check, until } from './lib.mjs';

const [clientPort, adminPort, name, runAt] = process.argv.slice(2);

await until(async () => (await fetch(`http://127.0.0.1:${clientPort}/readyz`)).status === 200, 'readiness', 15000);
const readyAfter = Date.now() - Number(runAt);
const startLogs = podman('logs', name).split('\n').filter(Boolean).map((l) => JSON.parse(l));
const t = (event) => Date.parse(startLogs.find((l) => l.event === event)?.ts);
check(true, `ready on the client listener ${readyAfter} ms after podman run (server built to listening: ${t('server.started') - t('server.descriptors')} ms)`);
const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.json());
check(health.status === 'ok', 'admin listener from HERALD_ADMIN_LISTEN answers /healthz');
podman('healthcheck', 'run', name);
check(true, 'the image HEALTHCHECK passes');
check(podman('exec', name, 'id', '-u') === '10001', 'runs as the non-root user 10001');
const consolePage = await fetch(`http://127.0.0.1:${adminPort}/console/`);
check(consolePage.status === 200 && (await consolePage.text()).includes('Herald'), 'the admin console is served at /console/');

const ws = new WebSocket(`ws://127.0.0.1:${clientPort}/`);
const messages = [];
const closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
ws.on('message', (d) => messages.push(d.toString()));
await new Promise((resolve, reject) => {
  ws.on('open', resolve);
  ws.on('error', reject);
});
ws.send('hello from the smoke test');
await until(() => messages.includes('hello from the smoke test'), 'echo');
check(true, 'WebSocket echo through the $default route');

const logs = podman('logs', name).split('\n').filter(Boolean).map((l) => JSON.parse(l));
check(logs.every((l) => l.ts && l.level && l.event && l.nodeId === 'smoke-1'), 'every log line is JSON with ts, level, event, nodeId');
check(logs.some((l) => l.event === 'connection.open' && l.connectionId), 'connection.open logged with connectionId');

const t0 = Date.now();
podman('kill', '--signal', 'TERM', name);
const info = await closed;
check(info.code === 1001 && info.reason === 'server draining; reconnect', `client closed with 1001 "${info.reason}"`);
const code = await until(() => {
  const state = JSON.parse(podman('inspect', name, '--format', '{{json .State}}'));
  return state.Status === 'exited' ? String(state.ExitCode) : null;
}, 'container exit', 10000);
const took = Date.now() - t0;
check(code === '0' && took < 4000, `container exited ${code} ${took} ms after SIGTERM (budget 4 s)`);
