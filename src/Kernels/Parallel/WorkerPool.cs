namespace EdgeViT.Kernels.Parallel;

/// <summary>
/// A fixed set of threads for fork-join kernels. <see cref="Run"/> takes a function pointer and a context
/// pointer (the caller's stack struct, valid because Run blocks until every task is done), so dispatch
/// allocates nothing. The calling thread works too; tasks are claimed dynamically for balance.
/// Workers spin briefly between dispatches (a forward pass issues ~100 of them back to back), then sleep.
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private delegate*<void*, int, int, void> _fn;
    private void* _ctx;
    private int _taskCount;
    private int _nextTask;
    private int _pendingWorkers;
    private long _generation;
    private volatile bool _disposed;
    private const int SpinIterations = 20_000;

    public int Threads { get; }

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
        if (_threads.Length == 0 || taskCount == 1)
        {
            for (int t = 0; t < taskCount; t++) fn(ctx, t, 0);
            return;
        }
        _fn = fn; _ctx = ctx; _taskCount = taskCount; _nextTask = 0;
        Volatile.Write(ref _pendingWorkers, _threads.Length);
        lock (_gate)
        {
            Interlocked.Increment(ref _generation);
            Monitor.PulseAll(_gate);
        }
        Drain(0);
        var spin = new SpinWait();
        while (Volatile.Read(ref _pendingWorkers) != 0) spin.SpinOnce(sleep1Threshold: -1);
    }

    private void Drain(int worker)
    {
        int t;
        while ((t = Interlocked.Increment(ref _nextTask) - 1) < _taskCount) _fn(_ctx, t, worker);
    }

    private void WorkerLoop(int worker)
    {
        long seen = 0;
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_disposed)
            {
                if (++spins < SpinIterations) { Thread.SpinWait(20); continue; }
                lock (_gate)
                {
                    while (Volatile.Read(ref _generation) == seen && !_disposed) Monitor.Wait(_gate);
                }
            }
            if (_disposed) return;
            seen = Volatile.Read(ref _generation);
            Drain(worker);
            Interlocked.Decrement(ref _pendingWorkers);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _threads) t.Join();
    }
}
