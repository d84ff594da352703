// A real SIP user agent (SIP.js) running in Node, as a browser softphone would: SIP over a
// WebSocket (subprotocol `sip`) to ward, authenticated with a bearer token. Node has no WebRTC,
// so the session description handler hands out a fixed audio SDP: ward carries signalling only.

import {
  EmitterImpl,
  Inviter,
  Registerer,
  RegistererState,
  SessionState,
  TransportState,
  UserAgent,
  type Invitation,
  type Session,
  type SessionDescriptionHandler,
  type Transport,
} from 'sip.js';
import { WebSocket } from 'ws';

const SDP = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 9 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n');

class FixedSdp implements SessionDescriptionHandler {
  close(): void {}
  getDescription(): Promise<{ body: string; contentType: string }> {
    return Promise.resolve({ body: SDP, contentType: 'application/sdp' });
  }
  hasDescription(contentType: string): boolean {
    return contentType === 'application/sdp';
  }
  setDescription(): Promise<void> {
    return Promise.resolve();
  }
  sendDtmf(): boolean {
    return false;
  }
}

interface WsTransportOptions {
  readonly server: string;
  readonly headers?: Record<string, string>;
}

/** SIP.js's Transport on the `ws` package (SIP.js's own one needs a browser's WebSocket). */
class WsTransport implements Transport {
  readonly protocol = 'WS';
  readonly stateChange = new EmitterImpl<TransportState>();
  state: TransportState = TransportState.Disconnected;
  onConnect: (() => void) | undefined;
  onDisconnect: ((error?: Error) => void) | undefined;
  onMessage: ((message: string) => void) | undefined;
  ws: WebSocket | undefined;
  /** Close code/reason of the last disconnect. */
  closedWith: { code: number; reason: string } | undefined;

  constructor(
    _logger: unknown,
    private readonly options: WsTransportOptions,
  ) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.options.server, 'sip', { headers: this.options.headers, perMessageDeflate: false });
      this.ws = ws;
      this.set(TransportState.Connecting);
      ws.once('open', () => {
        this.set(TransportState.Connected);
        this.onConnect?.();
        resolve();
      });
      ws.once('unexpected-response', (_req, res) => {
        ws.terminate();
        reject(new Error(`upgrade refused: ${res.statusCode}`));
      });
      ws.on('error', (err) => {
        if (this.state === TransportState.Connecting) reject(err);
      });
      ws.on('message', (data: Buffer) => this.onMessage?.(data.toString('utf8')));
      ws.once('close', (code, reason) => {
        this.closedWith = { code, reason: reason.toString() };
        const was = this.state;
        this.set(TransportState.Disconnected);
        if (was === TransportState.Connected) this.onDisconnect?.(code === 1000 ? undefined : new Error(`closed ${code}`));
      });
    });
  }

  disconnect(): Promise<void> {
    const ws = this.ws;
    if (ws === undefined || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
    });
  }

  dispose(): Promise<void> {
    return this.disconnect();
  }

  isConnected(): boolean {
    return this.state === TransportState.Connected;
  }

  send(message: string): Promise<void> {
    if (this.ws?.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    this.ws.send(message);
    return Promise.resolve();
  }

  /** The connection drops without a close frame (a crashed tab, a lost network). */
  drop(): void {
    this.ws?.terminate();
  }

  private set(s: TransportState): void {
    if (this.state === s) return;
    this.state = s;
    this.stateChange.emit(s);
  }
}

export interface CallOutcome {
  /** Final status: 200 when answered. */
  readonly status: number;
  readonly reason: string;
  readonly retryAfter: string | undefined;
  readonly callId: string;
  readonly session: Inviter;
}

export interface PhoneOptions {
  readonly user: string;
  readonly domain: string;
  /** ward's SIP route, e.g. ws://127.0.0.1:PORT/sip */
  readonly server: string;
  /** Bearer token: sent as access_token in the URL (as a browser must) unless `tokenInHeader`. */
  readonly token: string;
  readonly tokenInHeader?: boolean;
  /** Answer incoming calls with 200 (default), leave them ringing, or refuse them with a status. */
  readonly onInvite?: 'answer' | 'ring' | number;
}

export class SipPhone {
  /** Incoming calls, in arrival order. */
  readonly incoming: Invitation[] = [];
  private constructor(
    readonly ua: UserAgent,
    readonly transport: WsTransport,
    readonly registerer: Registerer,
    private readonly domain: string,
  ) {}

  static async start(o: PhoneOptions): Promise<SipPhone> {
    const server = o.tokenInHeader ? o.server : `${o.server}?access_token=${encodeURIComponent(o.token)}`;
    const headers = o.tokenInHeader ? { authorization: `Bearer ${o.token}` } : undefined;
    let phone: SipPhone | undefined;
    const ua = new UserAgent({
      uri: UserAgent.makeURI(`sip:${o.user}@${o.domain}`),
      transportConstructor: WsTransport,
      transportOptions: { server, headers } satisfies WsTransportOptions,
      sessionDescriptionHandlerFactory: () => new FixedSdp(),
      logBuiltinEnabled: false,
      logLevel: 'error',
      noAnswerTimeout: 60,
      delegate: {
        onInvite: (inv) => {
          phone!.incoming.push(inv);
          const how = o.onInvite ?? 'answer';
          if (how === 'answer') void inv.accept();
          else if (how === 'ring') void inv.progress();
          else void inv.reject({ statusCode: how });
        },
      },
    });
    const registerer = new Registerer(ua, { expires: 600 });
    phone = new SipPhone(ua, ua.transport as unknown as WsTransport, registerer, o.domain);
    await ua.start();
    await new Promise<void>((resolve, reject) => {
      registerer.stateChange.addListener((s) => {
        if (s === RegistererState.Registered) resolve();
      });
      void registerer.register({ requestDelegate: { onReject: (r) => reject(new Error(`REGISTER refused: ${r.message.statusCode}`)) } });
    });
    return phone;
  }

  /** Places a call; resolves on the final answer (200 once the call is up). */
  call(user: string): Promise<CallOutcome> {
    const target = UserAgent.makeURI(`sip:${user}@${this.domain}`)!;
    const inviter = new Inviter(this.ua, target);
    const callId = inviter.request.callId;
    return new Promise((resolve, reject) => {
      inviter
        .invite({
          requestDelegate: {
            onAccept: (r) => resolve({ status: r.message.statusCode ?? 200, reason: r.message.reasonPhrase ?? '', retryAfter: undefined, callId, session: inviter }),
            onReject: (r) =>
              resolve({ status: r.message.statusCode ?? 0, reason: r.message.reasonPhrase ?? '', retryAfter: r.message.getHeader('Retry-After'), callId, session: inviter }),
          },
        })
        .catch(reject);
    });
  }

  /** Starts a call and returns at once (for CANCEL tests); `answered` settles on its final answer. */
  ring(user: string): { inviter: Inviter; callId: string; answered: Promise<number> } {
    const inviter = new Inviter(this.ua, UserAgent.makeURI(`sip:${user}@${this.domain}`)!);
    const answered = new Promise<number>((resolve) => {
      void inviter.invite({
        requestDelegate: { onAccept: (r) => resolve(r.message.statusCode ?? 200), onReject: (r) => resolve(r.message.statusCode ?? 0) },
      });
    });
    return { inviter, callId: inviter.request.callId, answered };
  }

  /** Ends an established call with BYE and waits until it is terminated. */
  static hangUp(s: Session): Promise<void> {
    return new Promise((resolve) => {
      s.stateChange.addListener((st) => {
        if (st === SessionState.Terminated) resolve();
      });
      void s.bye();
    });
  }

  async stop(): Promise<void> {
    try {
      await this.ua.stop();
    } catch {
      // already disconnected
    }
  }
}
