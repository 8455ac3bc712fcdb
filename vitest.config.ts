import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Tests start servers, build images and run runc: two cores, keep the
    // parallelism modest so timings stay sane.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
