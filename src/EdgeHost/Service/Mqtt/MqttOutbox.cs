namespace EdgeViT.Host.Service;

/// <summary>What a queued message is for: its topic is chosen when it is sent.</summary>
public enum MqttTopicKind : byte { Verdict, Status }

/// <summary>
/// The bounded queue between the inference path and the MQTT connection: a ring of reusable byte buffers.
/// <see cref="TryEnqueue"/> copies the payload and never waits; when the ring is full the oldest message is
/// overwritten and counted in <see cref="Dropped"/>. After warm-up (buffers grown to the payload size) enqueueing
/// allocates nothing. Thread-safe; one consumer.
/// </summary>
public sealed class MqttOutbox
{
    private readonly object _lock = new();
    private readonly byte[][] _buffers;
    private readonly int[] _lengths;
    private readonly MqttTopicKind[] _kinds;
    private readonly SemaphoreSlim _available = new(0, 1);
    private int _head, _count;
    private long _enqueued, _dropped;

    public MqttOutbox(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _buffers = new byte[capacity][];
        for (int i = 0; i < capacity; i++) _buffers[i] = new byte[1024];
        _lengths = new int[capacity];
        _kinds = new MqttTopicKind[capacity];
    }

    public int Capacity => _buffers.Length;
    public int Count { get { lock (_lock) return _count; } }
    public long Enqueued => Interlocked.Read(ref _enqueued);
    /// <summary>Messages overwritten before they could be sent (the broker was down or slow).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Copies a message in; overwrites the oldest when full. Never blocks.</summary>
    public void TryEnqueue(MqttTopicKind kind, ReadOnlySpan<byte> payload)
    {
        lock (_lock)
        {
            if (_count == _buffers.Length)
            {
                _head = (_head + 1) % _buffers.Length;
                _count--;
                Interlocked.Increment(ref _dropped);
            }
            int slot = (_head + _count) % _buffers.Length;
            if (_buffers[slot].Length < payload.Length) _buffers[slot] = new byte[Math.Max(payload.Length, _buffers[slot].Length * 2)];
            payload.CopyTo(_buffers[slot]);
            _lengths[slot] = payload.Length;
            _kinds[slot] = kind;
            _count++;
            Interlocked.Increment(ref _enqueued);
        }
        lock (_available)
            if (_available.CurrentCount == 0) _available.Release();
    }

    /// <summary>Takes the oldest message into a fresh array (the sending side may allocate); false when empty.</summary>
    public bool TryDequeue(out MqttTopicKind kind, out byte[] payload)
    {
        lock (_lock)
        {
            if (_count == 0) { kind = default; payload = []; return false; }
            kind = _kinds[_head];
            payload = _buffers[_head].AsSpan(0, _lengths[_head]).ToArray();
            _head = (_head + 1) % _buffers.Length;
            _count--;
            return true;
        }
    }

    /// <summary>Waits until something may be queued (or the token fires).</summary>
    public Task WaitAsync(TimeSpan timeout, CancellationToken ct) => _available.WaitAsync(timeout, ct);
}
