import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/setup/kafka-global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // integration tests share one broker; files run in parallel on separate topics/groups
    pool: 'forks',
  },
})
