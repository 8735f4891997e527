// npm's postinstall for pullback: says, once, when the optional Kafka client did not install.
// @confluentinc/kafka-javascript is an optional dependency: where its prebuilt binary cannot be
// downloaded (no access to GitHub) and its source build fails, npm leaves it out and the install
// still succeeds. Everything without a broker (pullback demo, replay, the embedded bus) works then;
// a real broker needs the client. This script never fails the install.
'use strict'
try {
  require('@confluentinc/kafka-javascript')
} catch (err) {
  const why = err && err.code === 'MODULE_NOT_FOUND' ? 'is not installed' : `does not load (${err && err.message ? err.message.split('\n')[0] : err})`
  process.stderr.write(
    [
      '',
      `pullback: the Kafka client @confluentinc/kafka-javascript ${why}.`,
      '  pullback demo, pullback replay and the embedded bus work without it; a real Kafka broker needs it.',
      '  Its prebuilt binary comes from GitHub; without GitHub, build it from the sources in the npm package:',
      '    apt-get install libzstd-dev liblz4-dev libsasl2-dev   # Debian/Ubuntu: the libraries librdkafka links to',
      '    CKJS_LINKING=dynamic npm ci',
      '',
    ].join('\n'),
  )
}
