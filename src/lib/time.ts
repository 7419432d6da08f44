/** Milliseconds in one (UTC) day: retention, partitions and time ranges count in whole days. */
export const DAY_MS = 86_400_000;
