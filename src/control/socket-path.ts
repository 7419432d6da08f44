import path from 'node:path';

/** Where the embedded server listens for the operator CLI: beside the database it holds. */
export function controlSocketPath(dataDir: string): string {
  return path.join(dataDir, 'control.sock');
}

/** sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = process.platform === 'darwin' ? 103 : 107;

export function socketPathFits(socketPath: string): boolean {
  return Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH_BYTES;
}

/** libuv silently truncates a longer path, which would put the socket somewhere else entirely. */
export function checkSocketPath(socketPath: string): void {
  if (!socketPathFits(socketPath)) {
    const bytes = Buffer.byteLength(socketPath);
    throw new Error(
      `the control socket path ${socketPath} is ${bytes} bytes, more than the ${MAX_SOCKET_PATH_BYTES} a unix socket allows; use a shorter DATA_DIR`,
    );
  }
}
