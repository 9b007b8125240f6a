using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace EdgeViT.Kernels.Parallel;

/// <summary>
/// A fixed set of threads for fork-join kernels. <see cref="Run"/> takes a function pointer and a context
/// pointer (the caller's stack struct, valid because Run blocks until every task is done), so dispatch
/// allocates nothing.
/// <para>
/// The calling thread works too, and tasks are claimed one at a time from a shared counter, so a worker that
/// is descheduled (a loaded machine, shared vCPUs) or still asleep never holds the pass up: the caller claims
/// what nobody else took and finishes alone. The caller waits only for tasks already claimed. A run is never
/// waited on by worker check-in, so N threads cost at most the dispatch overhead over one.
/// </para>
/// <para>
/// A worker preempted in the middle of a task it claimed is the one thing the caller must wait for. When that
/// wait exceeds <see cref="StallMicroseconds"/> (the machine is oversubscribed: a time slice, not a task), the
/// next dispatches run on the caller alone, for a stretch that doubles while stalls recur and halves while they
/// do not, so on a loaded machine N threads degrade to about one thread instead of to a crawl.
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
    private readonly long _spinTicks = Math.Max(1, Stopwatch.Frequency * SpinMicroseconds / 1_000_000);
    private readonly long _stallTicks = Math.Max(1, Stopwatch.Frequency * StallMicroseconds / 1_000_000);
    private int _serialLeft;                     // dispatches still to run on the caller alone after a stall
    private int _serialStretch = MinSerialStretch;
    private int _cleanRuns;                      // parallel dispatches since the last stall
    private const int RecurrenceWindow = 16;     // a stall within this many clean dispatches of a stretch recurs
    private int _parallelSinceSerial = RecurrenceWindow; // clean parallel dispatches since the last stretch, saturating at the window

    // The claim word: generation (32 bits) | task count (16) | next unclaimed task (16). One CAS claims a task
    // and proves the generation is still current, so the _fn/_ctx read before it belong to that generation.
    private long _state;
    private delegate*<void*, int, int, void> _fn;
    private void* _ctx;
    private int _done;
    private int _sleepers;
    private ExceptionDispatchInfo? _error;
    private volatile bool _disposed;

    public int Threads { get; }

    /// <summary>Dispatches whose caller waited past <see cref="StallMicroseconds"/> for a claimed task.</summary>
    public long Stalls { get; private set; }

    /// <summary>Test seam: called by a worker (with its index) before it looks for tasks, e.g. to hold it back.</summary>
    internal Action<int>? BeforeWorkerClaims { get; set; }

    public WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must be at least 1");
        Threads = threads;
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
        long gen = (Volatile.Read(ref _state) >> 32) + 1;
        Interlocked.Exchange(ref _state, (gen << 32) | ((long)taskCount << 16)); // publishes _fn/_ctx (full fence)
        WakeSleepers();

        int mine = Drain(0);
        if (mine > 0 && Interlocked.Add(ref _done, mine) == taskCount) { Clean(); ThrowIfFailed(); return; }
        // Only tasks other threads already claimed are left: wait for them, yielding the CPU if one was descheduled.
        long waitFrom = Stopwatch.GetTimestamp();
        var spin = new SpinWait();
        while (Volatile.Read(ref _done) != taskCount) spin.SpinOnce(sleep1Threshold: -1);
        if (Stopwatch.GetTimestamp() - waitFrom > _stallTicks)
        {
            Stalls++;
            // A stall right after a serial stretch means the machine is still oversubscribed: double the stretch. An
            // isolated one (a hypervisor hiccup on a quiet VM) costs one short stretch, not a doubling that would keep
            // a quiet machine on one thread for hundreds of passes.
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

    /// <summary>Claims and runs tasks until none are left unclaimed; returns how many this thread ran.</summary>
    private int Drain(int worker)
    {
        int ran = 0;
        while (true)
        {
            long s = Volatile.Read(ref _state);
            int count = (int)(s >> 16) & 0xFFFF, next = (int)s & 0xFFFF;
            if (next >= count) return ran;
            var fn = _fn;
            void* ctx = _ctx;
            if (Interlocked.CompareExchange(ref _state, s + 1, s) != s) continue;
            // A failed task still counts as done (so nobody waits forever); the caller rethrows after the join,
            // never while other threads still use its stack context.
            try { fn(ctx, next, worker); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null); }
            ran++;
        }
    }

    private bool HasWork()
    {
        long s = Volatile.Read(ref _state);
        return ((int)s & 0xFFFF) < ((int)(s >> 16) & 0xFFFF);
    }

    private void WakeSleepers()
    {
        int s;
        while ((s = Volatile.Read(ref _sleepers)) > 0)
            if (Interlocked.CompareExchange(ref _sleepers, s - 1, s) == s) _wake.Release();
    }

    private void WorkerLoop(int worker)
    {
        while (!_disposed)
        {
            BeforeWorkerClaims?.Invoke(worker);
            int ran = Drain(worker);
            if (ran > 0) { Interlocked.Add(ref _done, ran); continue; }

            long start = Stopwatch.GetTimestamp();
            while (!HasWork() && !_disposed && Stopwatch.GetTimestamp() - start < _spinTicks) Thread.SpinWait(4);
            if (HasWork() || _disposed) continue;

            // Block. Announce first, then look once more, so a dispatch published in between is not slept through;
            // a sleeper the caller already counted out must consume its release.
            Interlocked.Increment(ref _sleepers);
            if (HasWork() || _disposed)
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
    }
}
