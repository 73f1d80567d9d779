'use strict';
// The Echo service on grpc-js, behaving like tests/grpc/echo.py's H2rpcEcho.
// Usage: node server.js ECHO_PROTO
// Prints JSON lines: {"ready": port} once listening, then one
// {"event": "call", ...} per message handled and {"event": "cancelled", ...}
// when a call is cancelled while the handler waits. Stops on SIGTERM/SIGINT.
const { grpc, loadEcho, metadataPairs, emit } = require('./common');

const Echo = loadEcho(process.argv[2]);

function response(request, index) {
  const payload = request.response_size
    ? Buffer.alloc(request.response_size, 'r')
    : request.payload;
  return { message: request.message, payload, index };
}

// Echo metadata, sleep, fail: what tests/grpc/echo.py's _prepare does.
// Resolves to a status error object, to 'cancelled', or to null.
async function prepare(call, request, method, state) {
  const metadata = call.metadata;
  emit({ event: 'call', method, metadata: metadataPairs(metadata), message: request.message });
  const initial = metadata.get('x-echo-initial');
  if (initial.length && !state.sentInitial) {
    const md = new grpc.Metadata();
    for (const value of initial) md.add('x-echo-initial', value);
    call.sendMetadata(md);
    state.sentInitial = true;
  }
  const trailing = metadata.get('x-echo-trailing-bin');
  if (trailing.length) {
    state.trailer = new grpc.Metadata();
    for (const value of trailing) state.trailer.add('x-echo-trailing-bin', value);
  }
  if (request.delay_ms) {
    const cancelled = await new Promise((resolve) => {
      if (call.cancelled) return resolve(true);
      const timer = setTimeout(() => resolve(false), request.delay_ms);
      call.once('cancelled', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (cancelled) {
      emit({ event: 'cancelled', method });
      return 'cancelled';
    }
  }
  if (request.status_code) {
    return {
      code: request.status_code,
      details: request.status_message,
      metadata: state.trailer || new grpc.Metadata(),
    };
  }
  return null;
}

const service = {
  async Unary(call, callback) {
    const state = {};
    const outcome = await prepare(call, call.request, 'Unary', state);
    if (outcome === 'cancelled') return;
    if (outcome) return callback(outcome);
    callback(null, response(call.request, 0), state.trailer);
  },

  async ServerStream(call) {
    const state = {};
    const outcome = await prepare(call, call.request, 'ServerStream', state);
    if (outcome === 'cancelled') return;
    if (outcome) return call.emit('error', outcome);
    for (let index = 0; index < call.request.repeat; index++) {
      call.write(response(call.request, index));
    }
    call.end(state.trailer);
  },

  ClientStream(call, callback) {
    const state = {};
    const messages = [];
    let finished = false;
    eachRequest(call, async (request) => {
      if (finished) return;
      const outcome = await prepare(call, request, 'ClientStream', state);
      if (outcome === 'cancelled') finished = true;
      else if (outcome) {
        finished = true;
        callback(outcome);
      } else messages.push(request.message);
    }, () => {
      if (!finished) {
        callback(null, { message: messages.join(','), index: messages.length }, state.trailer);
      }
    });
  },

  Bidi(call) {
    const state = {};
    let index = 0;
    let finished = false;
    eachRequest(call, async (request) => {
      if (finished) return;
      const outcome = await prepare(call, request, 'Bidi', state);
      if (outcome === 'cancelled') finished = true;
      else if (outcome) {
        finished = true;
        call.emit('error', outcome);
      } else {
        for (let i = 0; i < Math.max(1, request.repeat); i++) {
          call.write(response(request, index++));
        }
      }
    }, () => {
      if (!finished) call.end(state.trailer);
    });
  },
};

// Handles the requests of a client-streaming call one at a time, in order,
// then calls onEnd once the client has half-closed and all were handled.
function eachRequest(call, onRequest, onEnd) {
  let chain = Promise.resolve();
  call.on('data', (request) => {
    chain = chain.then(() => onRequest(request));
  });
  call.on('end', () => {
    chain = chain.then(onEnd);
  });
  call.on('error', () => {}); // a cancelled call: 'cancelled' is what counts
}

const server = new grpc.Server();
server.addService(Echo.service, service);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    emit({ error: String(error) });
    process.exit(1);
  }
  emit({ ready: port });
});

function stop() {
  server.forceShutdown();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
