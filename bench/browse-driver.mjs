// Times page loads for bench/browse, two ways:
//   node browse-driver.mjs bidi WS_URL PAGE_URL RUNS    Firefox driven directly over BiDi
//   node browse-driver.mjs agent SOCKET PAGE_URL RUNS   through pexi-agent's command socket
// Each run navigates to PAGE_URL and waits for the load event (cache bypassed, so every
// subresource is fetched again). Prints one line: "median_ms p90_ms min_ms".
import net from 'node:net';

const [mode, target, page, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 10);

function stats(ms) {
	ms.sort((a, b) => a - b);
	const q = (f) => ms[Math.min(ms.length - 1, Math.floor(f * ms.length))];
	return `${q(0.5).toFixed(1)} ${q(0.9).toFixed(1)} ${ms[0].toFixed(1)}`;
}

async function viaBidi() {
	const ws = new WebSocket(target);
	await new Promise((ok, bad) => { ws.onopen = ok; ws.onerror = () => bad(new Error('connect')); });
	let n = 0;
	const pending = new Map();
	ws.onmessage = (ev) => {
		const m = JSON.parse(ev.data);
		if (pending.has(m.id)) {
			pending.get(m.id)(m);
			pending.delete(m.id);
		}
	};
	const send = (method, params) => new Promise((ok) => { const id = ++n; pending.set(id, ok); ws.send(JSON.stringify({id, method, params})); });
	await send('session.new', {capabilities: {}});
	await send('network.setCacheBehavior', {cacheBehavior: 'bypass'});
	const ctx = (await send('browsingContext.getTree', {})).result.contexts[0].context;
	const times = [];
	for (let i = 0; i < runs + 1; i++) {
		const t = performance.now();
		const r = await send('browsingContext.navigate', {context: ctx, url: page, wait: 'complete'});
		if (r.type === 'error') throw new Error(r.message);
		if (i > 0) times.push(performance.now() - t); // the first load warms up Firefox
	}
	return times;
}

async function viaAgent() {
	const sock = net.connect({path: target});
	await new Promise((ok) => sock.once('connect', ok));
	let buf = '';
	const waiters = [];
	sock.setEncoding('utf8');
	sock.on('data', (d) => {
		buf += d;
		let nl;
		while ((nl = buf.indexOf('\n')) >= 0) {
			const line = buf.slice(0, nl);
			buf = buf.slice(nl + 1);
			waiters.shift()(JSON.parse(line));
		}
	});
	const cmd = (c) => new Promise((ok) => { waiters.push(ok); sock.write(JSON.stringify(c) + '\n'); });
	const times = [];
	for (let i = 0; i < runs + 1; i++) {
		const t = performance.now();
		const r = await cmd({cmd: 'navigate', url: page});
		if (!r.ok) throw new Error(r.error);
		if (i > 0) times.push(performance.now() - t);
	}
	sock.end();
	return times;
}

const times = mode === 'bidi' ? await viaBidi() : await viaAgent();
console.log(stats(times));
process.exit(0);
