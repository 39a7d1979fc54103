#!/usr/bin/env node
// pexi-agent: the guest browser's only way out.
//
// It owns Firefox's single WebDriver BiDi session, intercepts every request Firefox is
// about to send (one global intercept, phase beforeRequestSent), turns each into a pexi
// frame and sends it to the policy proxy through the channel at TCP 127.0.0.1:4040, then
// answers Firefox with network.provideResponse (or network.failRequest). Firefox itself
// never opens a connection: the VM has no network, and nothing here gives it one.
//
// Zero dependencies: Node >= 22's built-in WebSocket and net module only (Node 20 needs
// --experimental-websocket). Every intercepted request is resolved one way or another —
// a proxy that does not answer, a body over the cap or a response Firefox refuses each map
// to a defined response or a failRequest — because a request left blocked hangs the page.
//
// It also serves a small command interface for whoever drives the browser, JSON lines on
// TCP 127.0.0.1:4041 by default and on the virtio-serial port pexi.browser when the VM has
// one (the host's `pexi browse` reaches it through the instance's browser.sock): navigate,
// text, evaluate, screenshot, ping.
//
// Configuration (environment):
//   PEXI_BIDI_URL        ws://127.0.0.1:9222/session
//   PEXI_PEP_ADDR        127.0.0.1:4040 (host:port, or a unix socket path)
//   PEXI_CONTROL_ADDR    127.0.0.1:4041 (host:port, or a unix socket path; "" disables)
//   PEXI_CONTROL_PORT    /dev/virtio-ports/pexi.browser (a character device carrying the
//                        same JSON lines from the host; used when it exists, "" disables)
//   PEXI_TIMEOUT_MS      60000   per request, proxy round trip included
//   PEXI_MAX_BODY_BYTES  10485760  request bodies above it get 413 without leaving
//   PEXI_MAX_FRAME_BYTES 100663296 answers above it are refused (413)
//   PEXI_SHOT_DIR        where screenshot commands may write (default /workspace)

import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';

const env = process.env;
const config = {
	bidiUrl: env.PEXI_BIDI_URL || 'ws://127.0.0.1:9222/session',
	pepAddr: env.PEXI_PEP_ADDR || '127.0.0.1:4040',
	controlAddr: env.PEXI_CONTROL_ADDR ?? '127.0.0.1:4041',
	controlPort: env.PEXI_CONTROL_PORT ?? '/dev/virtio-ports/pexi.browser',
	timeoutMs: Number(env.PEXI_TIMEOUT_MS || 60000),
	maxBodyBytes: Number(env.PEXI_MAX_BODY_BYTES || 10 * 1024 * 1024),
	maxFrameBytes: Number(env.PEXI_MAX_FRAME_BYTES || 96 * 1024 * 1024),
	shotDir: env.PEXI_SHOT_DIR || '/workspace',
	connectTries: Number(env.PEXI_BIDI_CONNECT_TRIES || 120),
};

function log(...args) {
	process.stderr.write(`pexi-agent: ${args.join(' ')}\n`);
}

// "host:port" or a filesystem path, as net.connect / net.createServer options.
function socketOptions(addr) {
	if (addr.startsWith('/')) return {path: addr};
	const i = addr.lastIndexOf(':');
	return {host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1))};
}

// ---------------------------------------------------------------------------------------
// BiDi: one WebSocket, commands matched to answers by id, events to one handler.

class Bidi {
	constructor(ws, onEvent) {
		this.ws = ws;
		this.next = 0;
		this.pending = new Map();
		ws.onmessage = (ev) => {
			let msg;
			try {
				msg = JSON.parse(ev.data);
			} catch {
				return;
			}
			if (msg.id !== undefined && this.pending.has(msg.id)) {
				const p = this.pending.get(msg.id);
				this.pending.delete(msg.id);
				if (msg.type === 'error') p.reject(new Error(`${msg.error}: ${msg.message}`));
				else p.resolve(msg.result);
			} else if (msg.type === 'event') {
				onEvent(msg.method, msg.params);
			}
		};
		ws.onclose = () => {
			// Firefox went away or dropped us: without the session nothing can be
			// intercepted, so the agent ends and its supervisor restarts both.
			log('BiDi connection closed; exiting so the supervisor restarts Firefox and the agent');
			process.exit(3);
		};
	}

	send(method, params = {}) {
		const id = ++this.next;
		return new Promise((resolve, reject) => {
			this.pending.set(id, {resolve, reject});
			this.ws.send(JSON.stringify({id, method, params}));
		});
	}

	static async connect(url, tries, onEvent) {
		for (let i = 0; ; i++) {
			try {
				const ws = await new Promise((resolve, reject) => {
					const w = new WebSocket(url);
					w.onopen = () => resolve(w);
					w.onerror = () => reject(new Error(`cannot connect to '${url}'`));
				});
				return new Bidi(ws, onEvent);
			} catch (e) {
				if (i + 1 >= tries) throw e;
				await new Promise((r) => setTimeout(r, 250));
			}
		}
	}
}

// ---------------------------------------------------------------------------------------
// The channel to the policy proxy: one multiplexed connection, frames of a 4-byte
// big-endian length and JSON, every request carrying an id so answers may come in any
// order. Reconnects on demand; a request in flight when the connection drops fails.

class Channel {
	constructor(addr, maxFrameBytes) {
		this.addr = addr;
		this.maxFrameBytes = maxFrameBytes;
		this.sock = null;
		this.connecting = null;
		this.pending = new Map();
		this.next = 0;
		this.buf = Buffer.alloc(0);
	}

	connect() {
		if (this.sock) return Promise.resolve(this.sock);
		if (this.connecting) return this.connecting;
		this.connecting = new Promise((resolve, reject) => {
			const s = net.connect(socketOptions(this.addr));
			s.once('connect', () => {
				this.sock = s;
				this.connecting = null;
				resolve(s);
			});
			s.once('error', (e) => {
				this.connecting = null;
				if (this.sock !== s) reject(new Error(`cannot reach the policy proxy at '${this.addr}': ${e.code || e.message}`));
			});
			s.on('data', (d) => this.onData(d));
			s.on('close', () => this.onClose(s));
		});
		return this.connecting;
	}

	onData(d) {
		this.buf = Buffer.concat([this.buf, d]);
		while (this.buf.length >= 4) {
			const len = this.buf.readUInt32BE(0);
			if (len > this.maxFrameBytes) {
				// A length we will not buffer: the stream cannot be resynchronised.
				this.failAll(new Error(`answer of ${len} bytes exceeds the frame limit`), 'constraint_violation');
				this.sock.destroy();
				return;
			}
			if (this.buf.length < 4 + len) return;
			const body = this.buf.subarray(4, 4 + len);
			this.buf = this.buf.subarray(4 + len);
			let msg;
			try {
				msg = JSON.parse(body.toString('utf8'));
			} catch {
				continue;
			}
			const p = this.pending.get(msg.id);
			if (p) {
				this.pending.delete(msg.id);
				clearTimeout(p.timer);
				p.resolve(msg);
			}
		}
	}

	onClose(s) {
		if (this.sock === s) this.sock = null;
		this.buf = Buffer.alloc(0);
		this.failAll(new Error('the policy proxy closed the channel'), 'proxy_unreachable');
	}

	failAll(err, kind) {
		for (const [, p] of this.pending) {
			clearTimeout(p.timer);
			err.kind = kind;
			p.reject(err);
		}
		this.pending.clear();
	}

	async request(frame, timeoutMs) {
		const sock = await this.connect().catch((e) => {
			e.kind = 'proxy_unreachable';
			throw e;
		});
		const id = `a${++this.next}`;
		const json = Buffer.from(JSON.stringify({...frame, id}), 'utf8');
		const head = Buffer.alloc(4);
		head.writeUInt32BE(json.length, 0);
		return new Promise((resolve, reject) => {
			const timer = setTimeout(() => {
				this.pending.delete(id);
				const e = new Error(`no answer from the policy proxy within ${timeoutMs} ms`);
				e.kind = 'timeout';
				reject(e);
			}, timeoutMs);
			this.pending.set(id, {resolve, reject, timer});
			sock.write(Buffer.concat([head, json]));
		});
	}
}

// ---------------------------------------------------------------------------------------
// Header hygiene. The guest never chooses Host or hop-by-hop headers (the proxy would
// refuse them); Accept-Encoding is pinned to identity because the proxy passes bodies
// through undecoded and Firefox must receive what the headers describe.

const HOP_BY_HOP = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
	'content-length', 'te', 'trailer', 'upgrade', 'expect', 'proxy-authorization', 'proxy-authenticate']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function headerValue(h) {
	return h.value.type === 'base64' ? Buffer.from(h.value.value, 'base64').toString('latin1') : h.value.value;
}

function requestHeaders(headers) {
	const out = [];
	for (const h of headers) {
		const name = h.name.toLowerCase();
		if (HOP_BY_HOP.has(name) || name.startsWith('proxy-') || name === 'accept-encoding') continue;
		out.push([h.name, headerValue(h)]);
	}
	out.push(['Accept-Encoding', 'identity']);
	return out;
}

// What Firefox accepts in provideResponse: token names, values without surrounding
// whitespace or control bytes; hop-by-hop and length headers dropped (the body is whole).
function responseHeaders(headers) {
	const out = [];
	for (const [name, value] of headers || []) {
		if (typeof name !== 'string' || typeof value !== 'string' || !TOKEN.test(name)) continue;
		if (HOP_BY_HOP.has(name.toLowerCase())) continue;
		const v = value.trim();
		if (/[\0\r\n]/.test(v)) continue;
		out.push({name, value: {type: 'string', value: v}});
	}
	return out;
}

// ---------------------------------------------------------------------------------------
// Answers the agent makes itself.

const REASONS = {200: 'OK', 403: 'Forbidden', 413: 'Payload Too Large', 502: 'Bad Gateway', 504: 'Gateway Timeout'};

function escapeHtml(s) {
	return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// The page a user sees instead of a denied request: which rule class denied it and why.
function denialPage(url, code, message) {
	return `<!doctype html><html><head><meta charset="utf-8"><title>Blocked by pexi</title>
<style>body{font:16px sans-serif;margin:3em;color:#222}code{background:#eee;padding:2px 4px}</style></head>
<body><h1>Blocked by the sandbox policy</h1>
<p>The request to <code>${escapeHtml(url)}</code> was not allowed.</p>
<p>Policy decision: <code id="pexi-code">${escapeHtml(code)}</code></p>
<p>${escapeHtml(message || '')}</p></body></html>`;
}

const DENIAL_CODES = new Set(['denied_by_policy', 'ssrf_blocked', 'redirect_blocked', 'invalid_url', 'invalid_method']);

// The HTTP answer the user sees for an error class (the proxy's or the agent's own).
function errorResponse(url, code, message) {
	let status = 502;
	if (DENIAL_CODES.has(code)) status = 403;
	else if (code === 'constraint_violation') status = 413;
	else if (code === 'timeout') status = 504;
	return {
		status,
		headers: [{name: 'Content-Type', value: {type: 'string', value: 'text/html; charset=utf-8'}},
			{name: 'X-Pexi-Error', value: {type: 'string', value: code}},
			// Our own page, safe to show any origin: lets a page's script see why it failed.
			{name: 'Access-Control-Allow-Origin', value: {type: 'string', value: '*'}},
			{name: 'Access-Control-Expose-Headers', value: {type: 'string', value: 'X-Pexi-Error'}},
			{name: 'Cache-Control', value: {type: 'string', value: 'no-store'}}],
		body: Buffer.from(denialPage(url, code, message), 'utf8'),
	};
}

// ---------------------------------------------------------------------------------------
// The interceptor.

const stats = {intercepted: 0, answered: 0, failed: 0, denied: 0};

async function provide(bidi, requestId, r) {
	const params = {
		request: requestId,
		statusCode: r.status,
		reasonPhrase: REASONS[r.status] || 'Status',
		headers: r.headers,
		body: {type: 'base64', value: r.body.toString('base64')},
	};
	try {
		await bidi.send('network.provideResponse', params);
		stats.answered++;
	} catch (e) {
		// Firefox refused the response (a header it would not take, a request that went
		// away): fail it rather than leave it blocked.
		log(`provideResponse refused for ${requestId}: ${e.message}`);
		await bidi.send('network.failRequest', {request: requestId}).catch(() => {});
		stats.failed++;
	}
}

async function onRequest(bidi, channel, params) {
	const req = params.request;
	const id = req.request;
	stats.intercepted++;
	const url = req.url;
	// WebSockets cannot be carried as frames: refuse the handshake outright.
	if (req.headers.some((h) => h.name.toLowerCase() === 'sec-websocket-key')) {
		await bidi.send('network.failRequest', {request: id}).catch(() => {});
		stats.failed++;
		return;
	}
	if (!/^https?:/i.test(url)) {
		// data:, blob:, about: never reach the network; nothing to mediate.
		await bidi.send('network.continueRequest', {request: id}).catch(() => {});
		return;
	}
	let body = Buffer.alloc(0);
	if (req.bodySize > config.maxBodyBytes) {
		await provide(bidi, id, errorResponse(url, 'constraint_violation', `request body of ${req.bodySize} bytes exceeds ${config.maxBodyBytes}`));
		return;
	}
	if (req.bodySize > 0) {
		try {
			const d = await bidi.send('network.getData', {dataType: 'request', request: id});
			body = Buffer.from(d.bytes.value, d.bytes.type === 'base64' ? 'base64' : 'utf8');
		} catch (e) {
			await provide(bidi, id, errorResponse(url, 'http_error', `the request body could not be read: ${e.message}`));
			return;
		}
	}
	let answer;
	try {
		answer = await channel.request({
			method: req.method,
			url,
			headers: requestHeaders(req.headers),
			body_base64: body.toString('base64'),
		}, config.timeoutMs);
	} catch (e) {
		const code = e.kind === 'timeout' ? 'timeout' : e.kind === 'constraint_violation' ? 'constraint_violation' : 'http_error';
		await provide(bidi, id, errorResponse(url, code, e.message));
		return;
	}
	if (answer.error) {
		if (DENIAL_CODES.has(answer.error.code)) stats.denied++;
		await provide(bidi, id, errorResponse(url, answer.error.code, answer.error.message));
		return;
	}
	await provide(bidi, id, {
		status: answer.status,
		headers: responseHeaders(answer.headers),
		body: Buffer.from(answer.body_base64 || '', 'base64'),
	});
}

// ---------------------------------------------------------------------------------------
// The command interface: one JSON object per line in, one per line out.

async function topContext(bidi) {
	const tree = await bidi.send('browsingContext.getTree', {maxDepth: 0});
	return tree.contexts[0].context;
}

async function runCommand(bidi, cmd) {
	const ctx = cmd.context || await topContext(bidi);
	switch (cmd.cmd) {
	case 'ping':
		return {ok: true, stats};
	case 'navigate': {
		const r = await bidi.send('browsingContext.navigate', {context: ctx, url: cmd.url, wait: cmd.wait || 'complete'});
		return {ok: true, url: r.url};
	}
	case 'text': {
		const r = await bidi.send('script.evaluate', {expression: 'document.body ? document.body.innerText : ""', target: {context: ctx}, awaitPromise: false});
		return {ok: true, text: r.result.value};
	}
	case 'evaluate': {
		const r = await bidi.send('script.evaluate', {expression: cmd.expression, target: {context: ctx}, awaitPromise: true,
			resultOwnership: 'none', userActivation: Boolean(cmd.user_activation)});
		if (r.type === 'exception') return {ok: false, error: r.exceptionDetails.text};
		return {ok: true, result: r.result};
	}
	case 'screenshot': {
		const r = await bidi.send('browsingContext.captureScreenshot', {context: ctx, origin: 'document'});
		const png = Buffer.from(r.data, 'base64');
		if (!cmd.file) return {ok: true, png_base64: r.data};
		// Screenshots go only below the shot directory: a command cannot write elsewhere.
		const file = path.resolve(config.shotDir, cmd.file);
		if (!file.startsWith(path.resolve(config.shotDir) + path.sep)) return {ok: false, error: `'${cmd.file}' is outside '${config.shotDir}'`};
		fs.writeFileSync(file, png);
		return {ok: true, file, bytes: png.length};
	}
	default:
		return {ok: false, error: `unknown command '${cmd.cmd}'`};
	}
}

// Reads command lines from 'input' and writes one answer line each to 'write', one command
// at a time. A line over 1 MiB is a broken peer: its stream is dropped.
function commandLines(bidi, input, write, drop) {
	let buf = '';
	let busy = Promise.resolve();
	input.setEncoding('utf8');
	input.on('data', (d) => {
		buf += d;
		if (buf.length > 1 << 20) {
			buf = '';
			return drop();
		}
		let nl;
		while ((nl = buf.indexOf('\n')) >= 0) {
			const line = buf.slice(0, nl).trim();
			buf = buf.slice(nl + 1);
			if (!line) continue;
			busy = busy.then(async () => {
				let out;
				try {
					out = await runCommand(bidi, JSON.parse(line));
				} catch (e) {
					out = {ok: false, error: e.message};
				}
				write(JSON.stringify(out) + '\n');
			});
		}
	});
	input.on('error', () => {});
}

function serveCommands(bidi, addr) {
	const server = net.createServer((sock) => {
		commandLines(bidi, sock, (s) => sock.write(s), () => sock.destroy());
		sock.on('error', () => {});
	});
	const opts = socketOptions(addr);
	if (opts.path) fs.rmSync(opts.path, {force: true});
	server.listen(opts);
	return server;
}

// The device of the virtio-serial port named 'name': udev links it under
// /dev/virtio-ports/, but busybox mdev (Alpine) does not, so the names in sysfs are read too.
function findPort(path) {
	if (fs.existsSync(path)) return path;
	const name = path.split('/').pop();
	let entries = [];
	try {
		entries = fs.readdirSync('/sys/class/virtio-ports');
	} catch {
		return null;
	}
	for (const e of entries) {
		try {
			if (fs.readFileSync(`/sys/class/virtio-ports/${e}/name`, 'utf8').trim() === name) return `/dev/${e}`;
		} catch {
			// a port without a name: not ours
		}
	}
	return null;
}

// The virtio-serial port is one byte stream that outlives host connections: QEMU keeps it
// while `pexi browse` connects and disconnects, so it is opened once and never closed.
function servePort(bidi, path) {
	let fd;
	try {
		fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
	} catch (e) {
		log(`command port '${path}' not used: ${e.code || e.message}`);
		return;
	}
	const input = fs.createReadStream(null, {fd, autoClose: false});
	const output = fs.createWriteStream(null, {fd, autoClose: false});
	output.on('error', (e) => log(`command port write failed: ${e.message}`));
	commandLines(bidi, input, (s) => output.write(s), () => {});
	log(`serving commands on '${path}'`);
}

// ---------------------------------------------------------------------------------------

async function main() {
	const channel = new Channel(config.pepAddr, config.maxFrameBytes);
	let bidi;
	const onEvent = (method, params) => {
		if (method === 'network.beforeRequestSent' && params.isBlocked) {
			onRequest(bidi, channel, params).catch((e) => {
				log(`request ${params.request.request} failed: ${e.message}`);
				bidi.send('network.failRequest', {request: params.request.request}).catch(() => {});
			});
		}
	};
	bidi = await Bidi.connect(config.bidiUrl, config.connectTries, onEvent);
	await bidi.send('session.new', {capabilities: {}});
	// Before any page exists: no shared workers (they are never intercepted).
	await bidi.send('script.addPreloadScript', {
		functionDeclaration: '() => { try { delete window.SharedWorker; } catch (e) {} }',
	});
	await bidi.send('network.addDataCollector', {dataTypes: ['request'], maxEncodedDataSize: config.maxBodyBytes});
	await bidi.send('network.addIntercept', {phases: ['beforeRequestSent']});
	await bidi.send('network.setCacheBehavior', {cacheBehavior: 'bypass'});
	await bidi.send('session.subscribe', {events: ['network.beforeRequestSent']});
	if (config.controlAddr) serveCommands(bidi, config.controlAddr);
	const port = config.controlPort && findPort(config.controlPort);
	if (port) servePort(bidi, port);
	log(`ready: intercepting every request, proxy at ${config.pepAddr}`);
	// The marker supervisors and tests wait for.
	process.stdout.write('pexi-agent ready\n');
}

process.on('SIGTERM', () => process.exit(0));
main().catch((e) => {
	log(`fatal: ${e.message}`);
	process.exit(1);
});
