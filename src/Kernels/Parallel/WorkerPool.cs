using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace EdgeViT.Kernels.Parallel;

/// <summary>
/// A fixed set of threads for fork-join kernels. <see cref="Run"/> takes a function pointer and a context
/// pointer (the caller's stack struct, valid because Run blocks until every task is done), so dispatch
/// allocates nothing.
/// <para>
/// Each thread has a home range of the tasks (thread w: the w-th of Threads contiguous parts) and claims it from
/// the front; a thread whose range is empty steals from the back of the others'. Kernels number their tasks in
/// row order, so every stage of a forward pass gives thread w about the same rows, and the activations it writes
/// stay in its own core's cache for the next stage (with one shared counter they landed on either core at
/// random). The calling thread works too, so a
/// worker that is descheduled (a loaded machine, shared vCPUs) or still asleep never holds the pass up: the caller
/// steals what nobody else took and finishes alone. The caller waits only for tasks already claimed. A run is
/// never waited on by worker check-in, so N threads cost at most the dispatch overhead over one.
/// </para>
/// <para>
/// A worker preempted in the middle of a task it claimed is the one thing the caller must wait for. A wait over
/// <see cref="StallMicroseconds"/> is a stall (a time slice, not a task). Two stalls within
/// <see cref="StallPairWindow"/> dispatches mean the machine is oversubscribed: the next dispatches run on the
/// caller alone, for a stretch that doubles while stalls recur and halves while they do not, so on a loaded machine
/// N threads degrade to about one thread instead of to a crawl. A lone stall (a hypervisor preempting one vCPU)
/// costs only its own wait.
/// </para>
/// <para>
/// Idle workers spin for <see cref="SpinMicroseconds"/> (a forward pass issues ~100 dispatches back to back),
/// then block on a semaphore, so an idle or slow-paced service burns no CPU.
/// </para>
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    /// <summary>How long an idle worker polls for the next dispatch before it blocks.</summary>
    public const int SpinMicroseconds = 50;

    /// <summary>A wait for claimed tasks longer than this means a worker lost its CPU mid-task.</summary>
    public const int StallMicroseconds = 500;

    private const int MinSerialStretch = 128, MaxSerialStretch = 16384;

    /// <summary>Tasks per <see cref="Run"/> call are packed into 16 bits of the claim word.</summary>
    public const int MaxTasks = ushort.MaxValue;

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly SemaphoreSlim _joined = new(0);  // released for a caller that blocked waiting for claimed tasks
    private readonly long _spinTicks = Math.Max(1, Stopwatch.Frequency * SpinMicroseconds / 1_000_000);
    private readonly long _stallTicks = Math.Max(1, Stopwatch.Frequency * StallMicroseconds / 1_000_000);
    private int _serialLeft;                     // dispatches still to run on the caller alone after paired stalls
    private int _serialStretch = MinSerialStretch;
    private int _cleanRuns;                      // parallel dispatches since the last serial stretch began (lone stalls count)
    private const int RecurrenceWindow = 16;     // a stall within this many clean dispatches of a stretch recurs
    private int _parallelSinceSerial = RecurrenceWindow; // clean parallel dispatches since the last stretch, saturating at the window
    /// <summary>A stall within this many parallel dispatches of the previous one means oversubscription.</summary>
    private const int StallPairWindow = 8;
    private long _parallelRuns;                  // parallel dispatches so far
    private long _lastStallRun = long.MinValue / 2; // _parallelRuns at the previous stall

    // One claim word per thread, each on its own cache line (index (w + 1) * SlotStride): generation (32 bits) |
    // front (16) | back (16); thread w's unclaimed tasks are [front, back). The owner claims at the front, thieves
    // at the back; one CAS claims a task and proves the generation is still current, so the _fn/_ctx read before
    // it belong to that generation.
    private const int SlotStride = 8;
    private readonly long[] _slots;
    private int _generation;                     // the dispatch being run; published after its slots are written
    private delegate*<void*, int, int, void> _fn;
    private void* _ctx;
    private int _done;
    private int _count;                          // tasks in the current dispatch
    private int _callerBlocked;                  // the generation the caller sleeps on _joined for, else 0 (whoever clears it releases)
    private int _sleepers;
    private ExceptionDispatchInfo? _error;
    private volatile bool _disposed;

    public int Threads { get; }

    /// <summary>Dispatches whose caller waited past <see cref="StallMicroseconds"/> for a claimed task.</summary>
    public long Stalls { get; private set; }

    /// <summary>True while dispatches run on the caller alone after stalls in quick succession.</summary>
    internal bool RunningSerially => _serialLeft > 0;

    /// <summary>Test seam: called by a worker (with its index) before it looks for tasks, e.g. to hold it back.</summary>
    internal Action<int>? BeforeWorkerClaims { get; set; }

    public WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be at least 1");
        Threads = threads;
        _slots = new long[(threads + 2) * SlotStride];
        _threads = new Thread[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"edgevit-worker-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs fn(ctx, task, worker) for task in [0, taskCount); worker in [0, Threads) identifies per-thread scratch.</summary>
    public void Run(int taskCount, delegate*<void*, int, int, void> fn, void* ctx)
    {
        if (taskCount <= 0) return;
        if (taskCount > MaxTasks) throw new ArgumentOutOfRangeException(nameof(taskCount), taskCount, $"at most {MaxTasks} tasks per run");
        if (_threads.Length == 0 || taskCount == 1 || _serialLeft > 0)
        {
            if (_serialLeft > 0 && --_serialLeft == 0) _parallelSinceSerial = 0;
            for (int t = 0; t < taskCount; t++) fn(ctx, t, 0);
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);

        _fn = fn; _ctx = ctx;
        Volatile.Write(ref _done, 0);
        _count = taskCount;
        int gen = _generation + 1;
        if (gen == 0) gen = 1;                   // 0 means "no dispatch" to _callerBlocked and to a fresh worker (wraps after 2^32)
        for (int w = 0; w < Threads; w++)
            _slots[(w + 1) * SlotStride] = ((long)(uint)gen << 32) | ((long)Split(taskCount, Threads, w) << 16) | (uint)Split(taskCount, Threads, w + 1);
        Interlocked.Exchange(ref _generation, gen); // publishes _fn/_ctx and the slots (full fence)
        WakeSleepers();

        long run = ++_parallelRuns;
        int mine = Drain(0, gen);
        if (mine > 0 && Interlocked.Add(ref _done, mine) == taskCount) { Clean(); ThrowIfFailed(); return; }
        // Only tasks other threads already claimed are left: spin for them (microseconds, as a rule), then block, so
        // a worker preempted mid-task (milliseconds) does not cost the caller's CPU too.
        long waitFrom = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _done) != taskCount && Stopwatch.GetTimestamp() - waitFrom < _spinTicks) Thread.SpinWait(4);
        if (Volatile.Read(ref _done) != taskCount)
        {
            Interlocked.Exchange(ref _callerBlocked, gen);
            // The last worker to finish clears the flag and releases; if it finished in between, whoever clears the
            // flag first decides whether a release is coming. The flag names the generation, so a worker finishing
            // an earlier dispatch late (preempted after its last task) cannot wake this one.
            if (Volatile.Read(ref _done) != taskCount || Interlocked.CompareExchange(ref _callerBlocked, 0, gen) != gen) _joined.Wait();
        }
        bool stalled = Stopwatch.GetTimestamp() - waitFrom > _stallTicks;
        if (stalled) Stalls++;
        // An isolated stall (the hypervisor preempting a vCPU on a quiet host: on the 2-vCPU Zen 4 VM, about one per
        // six DeiT-Tiny passes) costs only its own wait; a serial stretch after each one put about a quarter of the
        // passes on one thread. Stalls close together mean other threads compete for the cores: run alone a while.
        bool oversubscribed = stalled && run - _lastStallRun <= StallPairWindow;
        if (stalled) _lastStallRun = run;
        if (oversubscribed)
        {
            // A stall right after a serial stretch means the machine is still oversubscribed: double the stretch (the
            // dispatches run serially do not count towards the pair window, so the first stall after it pairs).
            _serialStretch = _parallelSinceSerial < RecurrenceWindow ? Math.Min(MaxSerialStretch, 2 * _serialStretch) : MinSerialStretch;
            _serialLeft = _serialStretch;
            _cleanRuns = 0;
        }
        else
        {
            if (_parallelSinceSerial < RecurrenceWindow) _parallelSinceSerial++; // saturates: a service runs for months
            Clean();
        }
        ThrowIfFailed();
    }

    private void Clean()
    {
        if (++_cleanRuns < 4 * MinSerialStretch) return;
        _cleanRuns = 0;
        _serialStretch = Math.Max(MinSerialStretch, _serialStretch / 2);
    }

    private void ThrowIfFailed()
    {
        var e = Interlocked.Exchange(ref _error, null);
        e?.Throw();
    }

    /// <summary>Start of part i when n tasks are cut into parts balanced to within one task.</summary>
    private static int Split(int n, int parts, int i) => (int)((long)n * i / parts);

    /// <summary>Runs this thread's home range, then steals the others' leftovers; returns how many tasks it ran.</summary>
    private int Drain(int worker, int gen)
    {
        int ran = Claim(worker, gen, fromFront: true, worker);
        for (int i = 1; i < Threads; i++) ran += Claim((worker + i) % Threads, gen, fromFront: false, worker);
        return ran;
    }

    /// <summary>Claims and runs tasks of one home range until it is empty (it stays empty for this generation).</summary>
    private int Claim(int owner, int gen, bool fromFront, int worker)
    {
        ref long slot = ref _slots[(owner + 1) * SlotStride];
        int ran = 0;
        while (true)
        {
            long s = Volatile.Read(ref slot);
            if ((int)(s >> 32) != gen) return ran;
            int front = (int)(s >> 16) & 0xFFFF, back = (int)s & 0xFFFF;
            if (front >= back) return ran;
            var fn = _fn;
            void* ctx = _ctx;
            if (Interlocked.CompareExchange(ref slot, fromFront ? s + (1L << 16) : s - 1, s) != s) continue;
            // A failed task still counts as done (so nobody waits forever); the caller rethrows after the join,
            // never while other threads still use its stack context.
            try { fn(ctx, fromFront ? front : back - 1, worker); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null); }
            ran++;
        }
    }

    private void WakeSleepers()
    {
        int s;
        while ((s = Volatile.Read(ref _sleepers)) > 0)
            if (Interlocked.CompareExchange(ref _sleepers, s - 1, s) == s) _wake.Release();
    }

    private void WorkerLoop(int worker)
    {
        int seen = 0; // the last generation this worker drained
        while (!_disposed)
        {
            BeforeWorkerClaims?.Invoke(worker);
            int gen = Volatile.Read(ref _generation);
            if (gen != seen)
            {
                // Read before claiming: if this worker claims a task of gen, gen was still running, so this is its count.
                int count = Volatile.Read(ref _count);
                int ran = Drain(worker, gen);
                seen = gen;
                if (ran > 0 && Interlocked.Add(ref _done, ran) == count && Interlocked.CompareExchange(ref _callerBlocked, 0, gen) == gen)
                    _joined.Release();
                continue;
            }

            long start = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref _generation) == seen && !_disposed && Stopwatch.GetTimestamp() - start < _spinTicks) Thread.SpinWait(4);
            if (Volatile.Read(ref _generation) != seen || _disposed) continue;

            // Block. Announce first, then look once more, so a dispatch published in between is not slept through;
            // a sleeper the caller already counted out must consume its release.
            Interlocked.Increment(ref _sleepers);
            if (Volatile.Read(ref _generation) != seen || _disposed)
            {
                int s;
                while ((s = Volatile.Read(ref _sleepers)) > 0)
                    if (Interlocked.CompareExchange(ref _sleepers, s - 1, s) == s) goto withdrawn;
            }
            _wake.Wait();
        withdrawn:;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_threads.Length > 0) _wake.Release(_threads.Length);
        foreach (var t in _threads) t.Join();
        _wake.Dispose();
        _joined.Dispose();
    }
}
