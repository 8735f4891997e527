/**
 * Identifying a process across a crash of the one that started it: pid plus the kernel's start
 * time (field 22 of /proc/<pid>/stat, clock ticks since boot) on the same host. A pid alone is
 * reused; pid + start time is not (within one boot). Where /proc does not exist (macOS) the start
 * time is "" and a process can be identified only as `unknown`.
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'

export type ProcessPresence = 'running' | 'gone' | 'unknown'

export const thisHost = hostname()

/** the start time of a live process, "" when it cannot be read (no /proc), undefined when it does not exist */
export function procStartTime(pid: number): string | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ESRCH') return existsProcDir() ? undefined : ''
    return ''
  }
  // comm (field 2) is in parentheses and may hold spaces; the fields after the last ')' start at field 3
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // a zombie has finished its work and only waits to be reaped
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined
  return rest[19] ?? ''
}

let procDir: boolean | undefined
function existsProcDir(): boolean {
  if (procDir === undefined) {
    try {
      readFileSync('/proc/self/stat')
      procDir = true
    } catch {
      procDir = false
    }
  }
  return procDir
}

/** whether the process `pid` started at `startTime` on `host` still runs, seen from this host */
export function presence(ref: { host: string; pid: number; startTime: string }): ProcessPresence {
  if (ref.host !== thisHost || ref.startTime === '') return 'unknown'
  const now = procStartTime(ref.pid)
  if (now === undefined) return 'gone'
  if (now === '') return 'unknown'
  return now === ref.startTime ? 'running' : 'gone'
}

/** this process, as `presence` identifies it */
export const self = { host: thisHost, pid: process.pid, startTime: procStartTime(process.pid) ?? '' }
