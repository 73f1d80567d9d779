'use strict';
// A grpc-js client running every call kind against an Echo server
// (tests/grpc/protos/echo.proto, semantics of tests/grpc/echo.py).
// Usage: node client.js ECHO_PROTO HOST:PORT
// Prints one JSON line per case: {"case", "code", "details", "responses",
// "initial", "trailing"} (bytes as base64), then {"done": true}.
const crypto = require('crypto');
const { grpc, loadEcho, metadataPairs, responseJson, emit } = require('./common');

const Echo = loadEcho(process.argv[2]);
const client = new Echo(process.argv[3], grpc.credentials.createInsecure());

const CASE_TIMEOUT_MS = 60000; // hang guard only

function outcome(name, status, responses, initial) {
  return {
    case: name,
    code: status.code,
    details: status.details,
    responses: responses.map(responseJson),
    initial: metadataPairs(initial),
    trailing: metadataPairs(status.metadata),
  };
}

// Runs a call (started by start(onData)) until its status; resolves to the outcome.
function track(name, call, responses, onEvent) {
  return new Promise((resolve) => {
    let initial = null;
    call.on('metadata', (md) => {
      initial = md;
      if (onEvent) onEvent('metadata', call);
    });
    if (call.on && responses) {
      call.on('data', (response) => {
        responses.push(response);
        if (onEvent) onEvent('data', call);
      });
    }
    call.on('error', () => {}); // the status below carries it
    call.on('status', (status) => resolve(outcome(name, status, responses || [], initial)));
  });
}

function deadline(ms) {
  return new Date(Date.now() + (ms || CASE_TIMEOUT_MS));
}

function unary(name, request, options = {}) {
  return new Promise((resolve) => {
    const responses = [];
    const call = client.Unary(
      request,
      options.metadata || new grpc.Metadata(),
      { deadline: deadline(options.deadlineMs) },
      (error, response) => {
        if (!error) responses.push(response);
      },
    );
    track(name, call, null).then((result) => {
      result.responses = responses.map(responseJson);
      resolve(result);
    });
  });
}

function serverStream(name, request, options = {}) {
  const call = client.ServerStream(request, options.metadata || new grpc.Metadata(), {
    deadline: deadline(options.deadlineMs),
  });
  return track(name, call, [], options.onEvent);
}

function clientStream(name, requests, options = {}) {
  return new Promise((resolve) => {
    const responses = [];
    const call = client.ClientStream(
      options.metadata || new grpc.Metadata(),
      { deadline: deadline() },
      (error, response) => {
        if (!error) responses.push(response);
      },
    );
    track(name, call, null).then((result) => {
      result.responses = responses.map(responseJson);
      resolve(result);
    });
    for (const request of requests) call.write(request);
    call.end();
  });
}

// Ping-pong: each request is written once the previous one's responses arrived.
function bidi(name, requests) {
  const call = client.Bidi(new grpc.Metadata(), { deadline: deadline() });
  const responses = [];
  let next = 0;
  let awaiting = 0;
  function writeNext() {
    if (next === requests.length) return call.end();
    const request = requests[next++];
    awaiting = Math.max(1, request.repeat || 0);
    call.write(request);
  }
  const done = track(name, call, responses, (kind) => {
    if (kind === 'data' && --awaiting === 0) writeNext();
  });
  writeNext();
  return done;
}

function echoMetadata() {
  const md = new grpc.Metadata();
  md.add('x-echo-initial', 'value one');
  md.add('x-echo-initial', 'value two');
  md.add('x-echo-trailing-bin', Buffer.from([...Array(256).keys()]));
  md.add('x-echo-trailing-bin', Buffer.from([0xff]));
  md.add('x-from-node', 'grpc-js');
  return md;
}

async function main() {
  const big = Buffer.alloc(1024 * 1024 + 3);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;
  const cases = [
    () => unary('unary', { message: 'hi', payload: Buffer.from([0, 1, 2, 255]) }),
    async () => {
      const result = await unary('unary_large', { message: 'big', payload: big });
      // Digests instead of 1 MiB of base64 on a line.
      result.sent_sha256 = crypto.createHash('sha256').update(big).digest('hex');
      result.responses = result.responses.map((r) => ({
        message: r.message,
        payload_sha256: crypto
          .createHash('sha256')
          .update(Buffer.from(r.payload, 'base64'))
          .digest('hex'),
      }));
      return result;
    },
    () => serverStream('server_stream', { message: 's', repeat: 5 }),
    () => serverStream('server_stream_empty', { message: 'none', repeat: 0 }),
    () => clientStream('client_stream', ['0', '1', '2', '3'].map((m) => ({ message: m }))),
    () => clientStream('client_stream_empty', []),
    () => bidi('bidi', [{ message: 'a' }, { message: 'b', repeat: 3 }, { message: 'c' }]),
    () => unary('metadata_unary', { message: 'm' }, { metadata: echoMetadata() }),
    () => serverStream('metadata_server_stream', { message: 'm', repeat: 1 }, {
      metadata: echoMetadata(),
    }),
    () => unary('status_unary', { status_code: 9, status_message: 'échec \u2603 100% done' }, {
      metadata: echoMetadata(),
    }),
    () => serverStream('status_server_stream', {
      status_code: 5,
      status_message: 'not here',
    }),
    () => unary('deadline', { message: 'slow', delay_ms: 30000 }, { deadlineMs: 300 }),
    // Cancelled once the server has answered with initial metadata, so the
    // server handler is known to be waiting when the RST_STREAM arrives.
    () => {
      const md = new grpc.Metadata();
      md.add('x-echo-initial', 'cancel me');
      return serverStream('cancel', { message: 'c', repeat: 1, delay_ms: 30000 }, {
        metadata: md,
        onEvent: (kind, call) => {
          if (kind === 'metadata') call.cancel();
        },
      });
    },
  ];
  for (const run of cases) {
    let timer;
    const guard = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('case timed out')), CASE_TIMEOUT_MS + 5000);
    });
    try {
      emit(await Promise.race([run(), guard]));
    } catch (error) {
      emit({ case: 'error', error: String(error && error.stack) });
    } finally {
      clearTimeout(timer);
    }
  }
  emit({ done: true });
  client.close();
}

main().then(
  () => process.exit(0),
  (error) => {
    emit({ case: 'error', error: String(error && error.stack) });
    process.exit(1);
  },
);
