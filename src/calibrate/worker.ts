/**
 * A backtest worker thread of calibrateFleet (fleet.ts): calibrates the histories it is handed,
 * one at a time, with the configuration it was started with, and answers each with its result
 * (the search's detail lines are forwarded as they come). Nothing is thrown out of the loop: a
 * failed calibration is an `error` answer naming the message.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { calibrateService } from './search.js'
import type { FromWorker, ToWorker, WorkerInit } from './fleet.js'

const init = workerData as WorkerInit
const port = parentPort
if (port !== null) {
  port.on('message', (m: ToWorker) => {
    if (m.kind !== 'job') return
    let answer: FromWorker
    try {
      const result = calibrateService(m.history, init.cfg, { ...init.calibrate, onProgress: (line) => port.postMessage({ kind: 'detail', id: m.id, line } satisfies FromWorker) })
      answer = { kind: 'done', id: m.id, result }
    } catch (err) {
      answer = { kind: 'error', id: m.id, message: err instanceof Error ? err.message : String(err) }
    }
    port.postMessage(answer)
  })
}
