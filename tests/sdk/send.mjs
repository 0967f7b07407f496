// Drive a real Node SDK, unchanged, against PushApp's Segment-compatible API.
//
//   node send.mjs <segment|rudder> <host> <write key> '<scenario JSON>'
//
// Sends identify, track, screen and alias, waits for the SDK to deliver them, and prints one
// JSON report on stdout: {"sdk", "requests": [{url, status, encoding}], "errors": [...]}.
// Exits 1 when the SDK reports an error or any response is not exactly HTTP 200, so the
// calling test fails fast (retries are kept to one, timeouts to a few seconds).

import { Analytics as SegmentAnalytics } from '@segment/analytics-node'
import RudderAnalytics from '@rudderstack/rudder-sdk-node'

const HTTP_TIMEOUT_MS = 5000

function fail(message) {
  process.stderr.write(`send.mjs: ${message}\n`)
  process.exit(2)
}

const [sdk, host, writeKey, scenarioJson] = process.argv.slice(2)
if (!sdk || !host || !writeKey || !scenarioJson) {
  fail('usage: node send.mjs <segment|rudder> <host> <write key> <scenario JSON>')
}
const scenario = JSON.parse(scenarioJson)
const requests = []
const errors = []

function describe(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

// One callback per call: each SDK calls it once the message was delivered or given up on.
function callbackPromise() {
  let callback
  const promise = new Promise((resolve) => {
    callback = (error) => {
      if (error) errors.push(describe(error))
      resolve()
    }
  })
  return { callback, promise }
}

function sendAll(client) {
  const { anonymousId, userId, newUserId, traits, event, properties, screen, screenProperties } =
    scenario
  const ids = scenario.messageIds
  const calls = [
    (cb) => client.identify({ anonymousId, userId, traits, messageId: ids.identify }, cb),
    (cb) => client.track({ anonymousId, userId, event, properties, messageId: ids.track }, cb),
    (cb) =>
      client.screen(
        { anonymousId, userId, name: screen, properties: screenProperties, messageId: ids.screen },
        cb
      ),
    (cb) => client.alias({ previousId: userId, userId: newUserId, messageId: ids.alias }, cb),
  ]
  return calls.map((call) => {
    const { callback, promise } = callbackPromise()
    call(callback)
    return promise
  })
}

async function runSegment() {
  const analytics = new SegmentAnalytics({
    writeKey,
    host,
    maxRetries: 1,
    httpRequestTimeout: HTTP_TIMEOUT_MS,
    flushAt: 20,
    flushInterval: 200,
    maxTotalBackoffDuration: 10,
    maxRateLimitDuration: 10,
  })
  analytics.on('error', (error) => errors.push(`${error.code}: ${describe(error.reason)}`))
  analytics.on('http_request', (request) => {
    requests.push({
      url: request.url,
      encoding: request.headers['Content-Encoding'] ?? null,
      status: null,
    })
  })
  analytics.on('http_response', (response) => {
    const pending = requests.find((request) => request.status === null)
    if (pending) pending.status = response.status
    else requests.push({ url: response.url, encoding: null, status: response.status })
  })
  const delivered = sendAll(analytics)
  await analytics.closeAndFlush({ timeout: 3 * HTTP_TIMEOUT_MS })
  await Promise.all(delivered)
}

async function runRudder() {
  const client = new RudderAnalytics(writeKey, {
    dataPlaneUrl: host,
    flushAt: 20,
    flushInterval: 200,
    timeout: HTTP_TIMEOUT_MS,
    retryCount: 1,
    axiosRetryConfig: { retryDelay: () => 100 },
    logLevel: 'error',
    // Without an errorHandler a failed background flush is an unhandled rejection.
    errorHandler: (error) => errors.push(`flush: ${describe(error)}`),
  })
  // Observe (not change) what goes over the wire: the SDK's own axios instance.
  client.axiosInstance.interceptors.response.use(
    (response) => {
      requests.push({
        url: response.config.url,
        encoding: response.config.headers?.['Content-Encoding'] ?? null,
        status: response.status,
      })
      return response
    },
    (error) => {
      requests.push({
        url: error.config?.url ?? null,
        encoding: error.config?.headers?.['Content-Encoding'] ?? null,
        status: error.response?.status ?? null,
      })
      return Promise.reject(error)
    }
  )
  const delivered = sendAll(client)
  // The first call flushes at once; flush until the in-memory queue is empty.
  for (let round = 0; round < 10 && client.queue.length > 0; round++) {
    await client.flush()
  }
  await client.flush()
  await Promise.all(delivered)
}

const runners = { segment: runSegment, rudder: runRudder }
if (!runners[sdk]) fail(`unknown SDK ${JSON.stringify(sdk)}; expected segment or rudder`)

try {
  await runners[sdk]()
} catch (error) {
  errors.push(describe(error))
}
const badStatus = requests.filter((request) => request.status !== 200)
if (requests.length === 0) errors.push('the SDK made no HTTP request')
for (const request of badStatus) errors.push(`HTTP ${request.status} from ${request.url}`)
process.stdout.write(`${JSON.stringify({ sdk, requests, errors })}\n`)
process.exit(errors.length ? 1 : 0)
