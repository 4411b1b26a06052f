// Small, clock-driven building blocks for the agent's caches and flood guard. No timers: every
// decision reads the injected clock, so tests step time by hand and stay deterministic.

/** Milliseconds since some epoch; Date.now in production, a hand-driven counter in tests. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/**
 * A token bucket: `capacity` tokens at most, `refillPerMs` tokens added per millisecond. take()
 * spends one token when there is one. Starts full.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly capacity: number,
    private readonly refillPerMs: number,
    private readonly clock: Clock,
  ) {
    if (!(capacity >= 1) || !(refillPerMs >= 0))
      throw new RangeError('token bucket: capacity >= 1 and a non-negative refill rate');
    this.tokens = capacity;
    this.at = clock();
  }

  private refill(): void {
    const now = this.clock();
    // A clock that goes backwards adds nothing (never a burst of free tokens).
    if (now > this.at) this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.refillPerMs);
    this.at = Math.max(this.at, now);
  }

  /** Whether a token is available now, without spending it. */
  available(): boolean {
    this.refill();
    return this.tokens >= 1;
  }

  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Gives back one token (never above capacity): for work that turned out to be legitimate. */
  refund(): void {
    this.refill();
    this.tokens = Math.min(this.capacity, this.tokens + 1);
  }

  /** Full again: the bucket holds no information and may be dropped. */
  isFull(): boolean {
    this.refill();
    return this.tokens >= this.capacity;
  }
}

/**
 * Per-key token buckets with a bounded number of keys: when full, buckets that refilled completely
 * (they carry no state) are dropped first, then the oldest. Dropping an old, partly spent bucket
 * only ever gives that key its burst again; the global bucket still bounds the total.
 */
export class KeyedTokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly capacity: number,
    private readonly refillPerMs: number,
    private readonly clock: Clock,
    private readonly maxKeys = 10_000,
  ) {}

  private bucket(key: string): TokenBucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) this.evict();
      bucket = new TokenBucket(this.capacity, this.refillPerMs, this.clock);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  private evict(): void {
    for (const [key, bucket] of this.buckets) if (bucket.isFull()) this.buckets.delete(key);
    while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
  }

  available(key: string): boolean {
    return this.buckets.get(key)?.available() ?? true;
  }

  take(key: string): boolean {
    return this.bucket(key).take();
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** A map whose entries expire `ttl` ms after they were set; bounded, oldest insertions go first. */
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.clock() >= entry.expires) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, expires: this.clock() + ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
