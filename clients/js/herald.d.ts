// Type declarations for herald.js (the Herald client SDK).

export declare const State: {
  readonly connecting: 'connecting';
  readonly open: 'open';
  readonly reconnecting: 'reconnecting';
  readonly closed: 'closed';
};
export type ConnectionState = (typeof State)[keyof typeof State];

export declare class HeraldError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;
  constructor(code: string, message: string, details?: Record<string, unknown>);
}

export interface ReconnectOptions {
  /** First backoff ceiling in ms (default 250); doubles per attempt, full jitter. */
  initialDelay?: number;
  /** Largest backoff ceiling in ms (default 10000). */
  maxDelay?: number;
  /** Give up after this many attempts in a row (default Infinity). */
  maxAttempts?: number;
}

export interface HeartbeatOptions {
  /** Ask for a heartbeat after this many ms without any frame (default 20000). */
  interval?: number;
  /** Declare the connection dead if nothing arrives within this many ms (default 10000). */
  timeout?: number;
  /** Route key Herald answers itself (websocket.heartbeat_action, default "$heartbeat"). */
  action?: string;
}

export interface FallbackOptions {
  /** Path of Herald's SSE fallback (sse.path, default "/sse"). */
  path?: string;
  /** A WebSocket not open, or open with nothing back, after this many ms is taken as blocked (default 5000). */
  openTimeout?: number;
  /** Stay on SSE this long (ms) before trying WebSocket again (default 60000). */
  retryWebSocketAfter?: number;
}

export type Transport = 'websocket' | 'sse';

export interface ConnectOptions {
  /** A JWT, or a function returning one (called on every connect, so it can refresh). */
  token?: string | (() => string | Promise<string>);
  /** Query parameter the token travels in (auth.jwt.query_parameter, default "access_token"). */
  tokenParameter?: string;
  /** Subprotocols to offer. */
  protocols?: string[];
  /** WebSocket implementation (default globalThis.WebSocket; in Node 20 pass `ws`). */
  WebSocket?: unknown;
  /** false: never reconnect. */
  reconnect?: ReconnectOptions | false;
  /** false: no heartbeats. */
  heartbeat?: HeartbeatOptions | false;
  /** Time to wait for a reply, ms (default 10000). */
  requestTimeout?: number;
  /** Messages kept while disconnected, sent on reconnect (default 256). */
  maxQueued?: number;
  /** Route keys of Herald's built-in actions, if the server renamed them. */
  actions?: Partial<Record<'subscribe' | 'unsubscribe' | 'publish' | 'presence', string>>;
  /** Server-Sent Events when WebSockets do not get through; false: WebSocket only. On by default where EventSource exists. */
  fallback?: FallbackOptions | false;
  /** EventSource implementation (default globalThis.EventSource). */
  EventSource?: unknown;
  /** fetch implementation for the fallback's POSTs (default globalThis.fetch). */
  fetch?: unknown;
}

export interface MessageMeta {
  channel: string;
  /** Position in the channel's history (history channels only). */
  offset?: number;
  epoch?: string;
  id?: string | number;
}

export interface SubscribeOptions {
  /** Resume after this offset (with its epoch): everything later is delivered first. */
  since?: number;
  epoch?: string;
  /** Called when a resume could not be filled: reload your state, live messages follow. */
  onResync?: (reply: SubscribeReply) => void;
  /** join/leave frames of a presence channel with events. */
  onPresence?: (event: { type: 'join' | 'leave'; channel: string; info: Record<string, unknown> }) => void;
}

export interface SubscribeReply {
  type: 'subscribed';
  channel: string;
  id: number;
  offset?: number;
  epoch?: string;
  recovered?: boolean;
  error?: string;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  code?: number;
  reason?: string;
  /** HTTP status of a refused handshake, when the WebSocket implementation tells it. */
  status?: number;
  attempt?: number;
  /** ms until the next attempt (reconnecting). */
  delay?: number;
  /** The transport now in use (open). */
  transport?: Transport;
}

export interface CloseEvent {
  code: number;
  reason: string;
  status?: number;
  willReconnect: boolean;
}

export interface ClientEvents {
  state: StateEvent;
  open: { reconnect: boolean; transport: Transport };
  /** The client changed transport: to SSE when WebSockets are blocked, back once they get through. */
  fallback: { from: Transport; to: Transport; reason: string };
  close: CloseEvent;
  /** Frames that are not replies or channel messages: user/connection messages, route answers. */
  message: { data: unknown; raw: boolean };
  resync: { channel: string; since: number; reply: SubscribeReply };
  error: Error;
}

export declare class HeraldClient {
  constructor(url: string, options?: ConnectOptions);
  readonly url: string;
  readonly state: ConnectionState;
  /** 'websocket', or 'sse' while WebSockets do not get through. */
  readonly transport: Transport;
  /** Resolves on the first open; rejects if the client closes first. */
  readonly opened: Promise<void>;
  readonly stats: { opens: number; reconnects: number; heartbeatTimeouts: number; duplicatesDropped: number };

  on<E extends keyof ClientEvents>(event: E, fn: (value: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, fn: (value: ClientEvents[E]) => void): void;

  send(action: string, payload?: Record<string, unknown>, options?: { reply?: false }): Promise<void>;
  send<R = Record<string, unknown>>(
    action: string,
    payload: Record<string, unknown> | undefined,
    options: { reply: true; timeout?: number },
  ): Promise<R>;
  subscribe<T = unknown>(
    channel: string,
    handler: (data: T, meta: MessageMeta) => void,
    options?: SubscribeOptions,
  ): Promise<SubscribeReply>;
  unsubscribe(channel: string): Promise<{ type: 'unsubscribed'; channel: string }>;
  publish(channel: string, data: unknown): Promise<{ type: 'published'; channel: string; offset?: number; epoch?: string }>;
  presence(channel: string): Promise<Record<string, unknown>>;
  position(channel: string): { offset?: number; epoch?: string } | undefined;
  /** Drops the connection and reconnects at once, resuming every subscription. */
  reconnect(): void;
  close(code?: number, reason?: string): void;
}

export declare function connect(url: string, options?: ConnectOptions): HeraldClient;
