/**
 * The decision write-ahead log: a signed decision is on local disk (written and fsynced) before the
 * publisher counts it as accepted, and leaves the log only once the broker acknowledged it. A
 * process that dies between the two (a crash, an OOM kill, a SIGKILL, a shutdown with the broker
 * down) re-publishes the same envelopes at its next start: same id, same signature, so consumers
 * dedupe by id (the actuator's idempotency record is keyed by decision id).
 *
 * File format: one record per line, `<crc32 hex8> <json>\n`, where json is
 *   {"t":"put","topic":T,"envelope":E}   a decision to publish to topic T
 *   {"t":"ack","id":I}                   decision I was acknowledged by the broker
 * A line whose checksum does not match (a write torn by the crash, a damaged disk block) is skipped
 * and counted (`corrupt`); the lines around it still count. Acks are appended without fsync: losing
 * one only means a duplicate publication, which consumers tolerate.
 *
 * Bounds: the file never grows past `maxBytes`. Once no decision is pending it is truncated; when
 * acknowledged records take more than half of it, it is rewritten with the pending ones only (write
 * to a temporary file, fsync, rename). A put that would still not fit is not written: the outcome
 * is `full`, counted, and the decision lives in memory only, as it did before the log existed.
 *
 * One writer per file: `open()` takes `<file>.lock` (O_EXCL, holding the pid). A lock whose pid is
 * gone, or is this very process (an earlier publisher in the same process, tests), is taken over;
 * a lock held by another live process fails `open()` with a PermanentError, because two writers
 * would truncate each other's pending decisions.
 *
 * All I/O is synchronous: decisions are rare (lifecycle events of deployments, not per item) and
 * the caller's contract is that `publish()` returns only once the decision is durable.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, ftruncateSync } from 'node:fs'
import { dirname } from 'node:path'
import { crc32 } from 'node:zlib'
import { PermanentError, errorMessage } from '../common/errors.js'
import type { DecisionEnvelope } from './envelope.js'

export interface WalEntry {
  topic: string
  envelope: DecisionEnvelope
}

export type WalAppendOutcome =
  | { kind: 'durable' }
  /** not written: the file would exceed maxBytes even after compaction */
  | { kind: 'full' }
  /** not written: the disk refused (ENOSPC, EIO, read-only); `error` says why */
  | { kind: 'failed'; error: string }

export interface WalOpenResult {
  /** decisions written by an earlier process and never acknowledged, oldest first */
  pending: WalEntry[]
  /** lines skipped because their checksum or JSON was bad */
  corrupt: number
}

export interface WalCounters {
  appended: number
  acked: number
  full: number
  failures: number
  corrupt: number
  compactions: number
  replayed: number
}

interface PendingLine {
  entry: WalEntry
  bytes: number
}

function frame(record: unknown): string {
  const json = JSON.stringify(record)
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`
}

/** The record of one line, or undefined when the line is damaged. */
function unframe(line: string): { t: 'put'; topic: string; envelope: DecisionEnvelope } | { t: 'ack'; id: string } | undefined {
  const sp = line.indexOf(' ')
  if (sp !== 8) return undefined
  const json = line.slice(9)
  if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return undefined
  try {
    const r = JSON.parse(json) as { t?: unknown; topic?: unknown; envelope?: { id?: unknown }; id?: unknown }
    if (r.t === 'put' && typeof r.topic === 'string' && typeof r.envelope?.id === 'string') return r as { t: 'put'; topic: string; envelope: DecisionEnvelope }
    if (r.t === 'ack' && typeof r.id === 'string') return { t: 'ack', id: r.id }
  } catch {
    // checksum matched but JSON did not parse: a writer bug, treated like damage
  }
  return undefined
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class DecisionWal {
  readonly file: string
  private fd: number | undefined
  private size = 0
  /** by decision id, insertion order = write order */
  private readonly pending = new Map<string, PendingLine>()
  private readonly counters: WalCounters = { appended: 0, acked: 0, full: 0, failures: 0, corrupt: 0, compactions: 0, replayed: 0 }
  private readonly lockFile: string
  /** a write failed part-way: the file may end in a partial line, so it is rewritten before the next append */
  private torn = false

  constructor(private readonly o: { file: string; maxBytes: number }) {
    this.file = o.file
    this.lockFile = `${o.file}.lock`
  }

  get isOpen(): boolean {
    return this.fd !== undefined
  }

  /** Takes the lock, reads what an earlier process left and compacts the file to it. Throws PermanentError when another live process holds the file or the directory is unusable. */
  open(): WalOpenResult {
    if (this.fd !== undefined) return { pending: [], corrupt: 0 }
    try {
      mkdirSync(dirname(this.file), { recursive: true })
    } catch (err) {
      throw new PermanentError('WAL_DIR', `publish.wal.file ${this.file}: cannot create its directory: ${errorMessage(err)}`, { cause: err })
    }
    this.lock()
    let text = ''
    try {
      text = readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.unlock()
        throw new PermanentError('WAL_READ', `publish.wal.file ${this.file}: ${errorMessage(err)}`, { cause: err })
      }
    }
    let corrupt = 0
    for (const line of text.split('\n')) {
      if (line === '') continue
      const r = unframe(line)
      if (r === undefined) corrupt++
      else if (r.t === 'put') this.pending.set(r.envelope.id, { entry: { topic: r.topic, envelope: r.envelope }, bytes: 0 })
      else this.pending.delete(r.id)
    }
    this.counters.corrupt += corrupt
    try {
      this.rewrite()
    } catch (err) {
      this.unlock()
      throw new PermanentError('WAL_WRITE', `publish.wal.file ${this.file}: ${errorMessage(err)}`, { cause: err })
    }
    const pending = [...this.pending.values()].map((p) => p.entry)
    this.counters.replayed += pending.length
    return { pending, corrupt }
  }

  /** Writes and fsyncs one decision. Never throws. */
  append(entry: WalEntry): WalAppendOutcome {
    if (this.fd === undefined) return { kind: 'failed', error: 'write-ahead log is not open' }
    if (this.pending.has(entry.envelope.id)) return { kind: 'durable' }
    if (this.torn) {
      try {
        this.rewrite()
      } catch (err) {
        this.counters.failures++
        if (this.fd === undefined) this.reopen()
        return { kind: 'failed', error: errorMessage(err) }
      }
    }
    const line = frame({ t: 'put', topic: entry.topic, envelope: entry.envelope })
    const bytes = Buffer.byteLength(line)
    if (this.size + bytes > this.o.maxBytes) {
      this.compact(this.size + bytes - this.o.maxBytes)
      if (this.size + bytes > this.o.maxBytes) {
        this.counters.full++
        return { kind: 'full' }
      }
    }
    try {
      writeSync(this.fd, line)
      fsyncSync(this.fd)
    } catch (err) {
      this.counters.failures++
      // a partial line may be on disk: skipped at the next open (checksum), rewritten before the next append
      this.torn = true
      this.size = this.currentSize()
      return { kind: 'failed', error: errorMessage(err) }
    }
    this.size += bytes
    this.pending.set(entry.envelope.id, { entry, bytes })
    this.counters.appended++
    return { kind: 'durable' }
  }

  /** Marks decisions acknowledged by the broker; compacts when that frees enough. Never throws. */
  ack(ids: string[]): void {
    if (this.fd === undefined) return
    let lines = ''
    for (const id of ids) {
      if (!this.pending.delete(id)) continue
      lines += frame({ t: 'ack', id })
      this.counters.acked++
    }
    if (lines === '') return
    if (this.pending.size === 0) {
      this.compact(1)
      return
    }
    const bytes = Buffer.byteLength(lines)
    if (this.size + bytes > this.o.maxBytes / 2 && this.compact(this.size / 2)) return
    try {
      writeSync(this.fd, lines)
      this.size += bytes
    } catch {
      // the decision is acked; without its ack line it is only re-published once more after a crash
      this.counters.failures++
      this.torn = true
    }
  }

  pendingCount(): number {
    return this.pending.size
  }

  stats(): WalCounters & { pending: number; bytes: number } {
    return { ...this.counters, pending: this.pending.size, bytes: this.size }
  }

  /** Closes the file and releases the lock; pending decisions stay in the file for the next start, an empty file is removed. Idempotent. */
  close(): void {
    if (this.fd === undefined) return
    try {
      closeSync(this.fd)
    } catch {
      // nothing to do: the data was fsynced when written
    }
    this.fd = undefined
    if (this.pending.size === 0) rmSync(this.file, { force: true })
    this.unlock()
  }

  /** Rewrites the file with the pending decisions only, when that frees at least `minFreed` bytes; true when it did. */
  private compact(minFreed: number): boolean {
    const pendingBytes = [...this.pending.values()].reduce((a, p) => a + p.bytes, 0)
    if (this.size - pendingBytes < Math.max(1, minFreed)) return false
    try {
      this.rewrite()
      this.counters.compactions++
      return true
    } catch {
      this.counters.failures++
      this.size = this.currentSize()
      if (this.fd === undefined) this.reopen()
      return false
    }
  }

  /** After a failed rewrite: append to whatever file is there, so later decisions can still be written. */
  private reopen(): void {
    try {
      this.fd = openSync(this.file, 'a')
    } catch {
      // stays closed: append() then answers `failed` and decisions live in memory only
    }
  }

  /** Replaces the file by one holding exactly the pending puts, durably (tmp + fsync + rename). */
  private rewrite(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    let text = ''
    for (const p of this.pending.values()) {
      const line = frame({ t: 'put', topic: p.entry.topic, envelope: p.entry.envelope })
      p.bytes = Buffer.byteLength(line)
      text += line
    }
    if (text === '') {
      const fd = openSync(this.file, 'a')
      ftruncateSync(fd, 0)
      fsyncSync(fd)
      this.fd = fd
      this.size = 0
      this.torn = false
      return
    }
    const tmp = `${this.file}.tmp`
    const t = openSync(tmp, 'w')
    try {
      writeSync(t, text)
      fsyncSync(t)
    } finally {
      closeSync(t)
    }
    renameSync(tmp, this.file)
    this.fsyncDir()
    this.fd = openSync(this.file, 'a')
    this.size = Buffer.byteLength(text)
    this.torn = false
  }

  private fsyncDir(): void {
    try {
      const d = openSync(dirname(this.file), 'r')
      try {
        fsyncSync(d)
      } finally {
        closeSync(d)
      }
    } catch {
      // some filesystems refuse fsync on a directory; the rename is still atomic
    }
  }

  private currentSize(): number {
    try {
      return statSync(this.file).size
    } catch {
      return this.size
    }
  }

  private lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockFile, 'wx')
        writeSync(fd, String(process.pid))
        closeSync(fd)
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new PermanentError('WAL_LOCK', `publish.wal.file ${this.file}: cannot create ${this.lockFile}: ${errorMessage(err)}`, { cause: err })
        }
      }
      let holder = NaN
      try {
        holder = Number(readFileSync(this.lockFile, 'utf8').trim())
      } catch {
        // vanished between open and read: try again
      }
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && pidAlive(holder)) {
        throw new PermanentError('WAL_LOCKED', `publish.wal.file ${this.file} is in use by process ${holder}: give each sidecar its own file`)
      }
      rmSync(this.lockFile, { force: true })
    }
    throw new PermanentError('WAL_LOCK', `publish.wal.file ${this.file}: could not take ${this.lockFile}`)
  }

  private unlock(): void {
    try {
      if (Number(readFileSync(this.lockFile, 'utf8').trim()) === process.pid) rmSync(this.lockFile, { force: true })
    } catch {
      // already gone
    }
  }
}
