/**
 * One HTTP SERVER span's OTLP/JSON-shaped attributes as a real HTTP instrumentation writes them
 * (stable semantic conventions, 10 attributes), shared by the benches that pre-encode span loads.
 */
export const strAttr = (key: string, stringValue: string) => ({ key, value: { stringValue } })
export const intAttr = (key: string, intValue: number) => ({ key, value: { intValue } })

/** `i`: the span's index in its request; `si`: the service's index; `agent`: the user agent (the bench's name) */
export function httpServerAttributes(service: string, route: string, i: number, si: number, failed: boolean, agent: string) {
  return [
    strAttr('http.request.method', i % 2 === 0 ? 'GET' : 'POST'),
    strAttr('http.route', route),
    intAttr('http.response.status_code', failed ? 500 : 200),
    strAttr('url.scheme', 'http'),
    strAttr('url.path', route.replace('{id}', String(1000 + i))),
    strAttr('server.address', `${service}.shop.svc`),
    intAttr('server.port', 8080),
    strAttr('network.protocol.version', '2'),
    strAttr('client.address', `127.0.${si}.${i & 0xff}`),
    strAttr('user_agent.original', agent),
  ]
}
