using System.Diagnostics;
using EdgeViT.Kernels.Parallel;
using Xunit;

namespace EdgeViT.Tests.Kernels;

public unsafe class WorkerPoolTests
{
    private struct Tally
    {
        public int* Runs;     // per task: how many times it ran
        public int* ByWorker; // per worker: tasks it ran
        public int Spin;      // busy work per task, so workers overlap
    }

    private static void Count(void* ctx, int task, int worker)
    {
        ref var t = ref *(Tally*)ctx;
        Interlocked.Increment(ref t.Runs[task]);
        Interlocked.Increment(ref t.ByWorker[worker]);
        if (t.Spin > 0) Thread.SpinWait(t.Spin);
    }

    /// <summary>Runs one dispatch of n tasks; returns the per-worker counts after checking every task ran once.</summary>
    private static int[] RunOnce(WorkerPool pool, int n, int spin)
    {
        var runs = new int[n];
        var byWorker = new int[pool.Threads];
        fixed (int* r = runs, w = byWorker)
        {
            var t = new Tally { Runs = r, ByWorker = w, Spin = spin };
            pool.Run(n, &Count, &t);
        }
        for (int i = 0; i < n; i++) Assert.True(runs[i] == 1, $"task {i} of {n} ran {runs[i]} times");
        return byWorker;
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void EveryTaskRunsExactlyOnceAcrossManyDispatches(int threads)
    {
        using var pool = new WorkerPool(threads);
        var rng = new Random(threads);
        var total = new int[threads];
        for (int i = 0; i < 3000; i++)
        {
            var byWorker = RunOnce(pool, rng.Next(1, 40), rng.Next(0, 3) * 50);
            for (int w = 0; w < threads; w++) total[w] += byWorker[w];
        }
        Assert.True(total[0] > 0, "the caller never ran a task");
    }

    private struct Order
    {
        public int* Worker;  // per task: the thread that ran it
        public int* Started; // per task: 1 once it began
    }

    private static bool WaitStarted(int* started, int task)
    {
        var sw = Stopwatch.StartNew();
        while (Volatile.Read(ref started[task]) == 0)
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) return false;
            Thread.SpinWait(20);
        }
        return true;
    }

    private static void Ordered(void* ctx, int task, int worker)
    {
        ref var o = ref *(Order*)ctx;
        o.Worker[task] = worker;
        Volatile.Write(ref o.Started[task], 1);
        // Task 0 (the caller's first) holds the caller until the worker has begun task 2; task 2 holds the worker until
        // task 1 has begun. With home ranges {0, 1} and {2, 3}, the worker's first claim is task 2, and task 1 stays
        // the caller's: the worker cannot steal it while it waits in task 2. (One shared counter would hand the
        // worker task 1 while the caller sits in task 0.)
        if (task == 0 && !WaitStarted(o.Started, 2)) o.Worker[0] = -1;
        if (task == 2 && !WaitStarted(o.Started, 1)) o.Worker[2] = -1;
    }

    [Fact]
    public void EachThreadClaimsItsOwnContiguousRangeFirst()
    {
        // Kernels number tasks in row order, so this is what keeps a thread on the rows it wrote in the previous stage.
        using var pool = new WorkerPool(2);
        // After a stall (a worker preempted on a loaded machine) the next dispatches run on the caller alone, where task
        // 0 would wait for a task 2 nobody runs: stop there. The first dispatch of a fresh pool is always parallel.
        for (int i = 0; i < 20 && pool.Stalls == 0; i++)
        {
            var worker = new int[4];
            var started = new int[4];
            fixed (int* w = worker, st = started)
            {
                var o = new Order { Worker = w, Started = st };
                pool.Run(4, &Ordered, &o);
            }
            Assert.True(worker[0] == 0 && worker[1] == 0 && worker[2] == 1,
                $"dispatch {i}: tasks 0-3 ran on threads {string.Join(", ", worker)} (-1: waited 30 s for the other thread)");
        }
    }

    [Fact]
    public void CallerFinishesAloneWhileEveryWorkerIsHeldBack()
    {
        // Workers that are descheduled or asleep must never stall a dispatch: with every worker blocked before
        // it can claim anything, the caller runs all tasks itself and returns.
        using var gate = new ManualResetEventSlim(false);
        using var pool = new WorkerPool(3) { BeforeWorkerClaims = _ => gate.Wait() };
        for (int i = 0; i < 500; i++)
        {
            var byWorker = RunOnce(pool, 1 + i % 20, 0);
            Assert.Equal(1 + i % 20, byWorker[0]);
        }
        gate.Set();
        // Released, the workers join in again (bounded: they are awake and the dispatches are long enough).
        var sw = Stopwatch.StartNew();
        int helped = 0;
        while (helped == 0 && sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            var byWorker = RunOnce(pool, 64, 2000);
            helped = byWorker.Skip(1).Sum();
        }
        Assert.True(helped > 0, "no worker took a task after the gate opened");
    }

    [Fact]
    public void SlowWorkersDelayNothingButTheirOwnTasks()
    {
        // A worker that stalls for a while before each claim (a preempted vCPU) still never breaks the count.
        using var pool = new WorkerPool(4) { BeforeWorkerClaims = w => { if (w % 2 == 1) Thread.Sleep(1); } };
        var rng = new Random(5);
        for (int i = 0; i < 400; i++) RunOnce(pool, rng.Next(1, 30), 200);
    }

    private static void SlowOnWorkers(void* ctx, int task, int worker)
    {
        Interlocked.Increment(ref ((int*)ctx)[worker]);
        if (worker != 0) Thread.Sleep(5); // a worker that loses its CPU in the middle of a task
        else Thread.SpinWait(2000);       // long enough for the worker to claim its own task first
    }

    /// <summary>Dispatches two SlowOnWorkers tasks until <paramref name="stop"/> holds (at most 30 s); returns the per-thread counts.</summary>
    private static int[] DispatchSlowUntil(WorkerPool pool, Func<bool> stop, int atLeast = 0)
    {
        var byWorker = new int[2];
        var sw = Stopwatch.StartNew();
        fixed (int* w = byWorker)
            for (int i = 0; i < atLeast || (!stop() && sw.Elapsed < TimeSpan.FromSeconds(30)); i++) pool.Run(2, &SlowOnWorkers, w);
        return byWorker;
    }

    [Fact]
    public void AnIsolatedStallKeepsThePoolParallel()
    {
        // A vCPU the hypervisor preempts once in a while (a quiet VM) costs that one wait, not a stretch on one thread.
        using var pool = new WorkerPool(2);
        DispatchSlowUntil(pool, () => pool.Stalls > 0);
        Assert.True(pool.Stalls == 1, "no worker took a task in 30 s");
        Assert.False(pool.RunningSerially);
    }

    [Fact]
    public void AfterStallsInQuickSuccessionTheCallerRunsTheNextDispatchesAlone()
    {
        // Stalls in dispatches close together mean the machine is oversubscribed: the caller goes on alone.
        using var pool = new WorkerPool(2);
        DispatchSlowUntil(pool, () => pool.RunningSerially);
        Assert.True(pool.RunningSerially, $"not serial after {pool.Stalls} stalls in 30 s");
        Assert.True(pool.Stalls >= 2);
        var byWorker = DispatchSlowUntil(pool, () => true, atLeast: 100);
        Assert.Equal(0, byWorker[1]); // the stretch after a stall is at least 128 dispatches
        Assert.Equal(200, byWorker[0]);
    }

    private static void Throw(void* ctx, int task, int worker)
    {
        if (task == 7) throw new InvalidOperationException("task 7 failed");
        Thread.SpinWait(100);
    }

    [Fact]
    public void ATaskExceptionReachesTheCallerAfterEveryTaskFinished()
    {
        using var pool = new WorkerPool(3);
        for (int i = 0; i < 50; i++)
        {
            var e = Assert.Throws<InvalidOperationException>(() => pool.Run(16, &Throw, null));
            Assert.Equal("task 7 failed", e.Message);
        }
        RunOnce(pool, 16, 0); // still usable
    }
}

/// <summary>Runs alone (no other test burns CPU meanwhile), so the process's CPU time measures the pool.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QuietProcessCollection { public const string Name = "quiet process"; }

[Collection(QuietProcessCollection.Name)]
public unsafe class WorkerPoolIdleTests
{
    private static void Spin(void* ctx, int task, int worker) => Thread.SpinWait(100);

    [Fact]
    public void IdleWorkersBurnNoCpu()
    {
        // After a burst of dispatches the workers spin for tens of microseconds, then block. Measured on the
        // workers' own threads where /proc names them (xunit's other threads do not count), else the process.
        var tids = new int[4];
        using var pool = new WorkerPool(4) { BeforeWorkerClaims = w => { if (tids[w] == 0) tids[w] = CurrentThreadId(); } };
        bool perThread = CurrentThreadId() > 0;
        // Dispatch until every worker has run its hook (each does on waking; bounded for a loaded machine).
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < 200 || (perThread && tids.Skip(1).Any(t => t == 0) && warm.Elapsed < TimeSpan.FromSeconds(20)); i++)
            pool.Run(32, &Spin, null);
        Assert.True(!perThread || tids.Skip(1).All(t => t > 0), "a worker never woke up for 20 s of dispatches");
        var cpu0 = CpuTime(perThread ? tids[1..] : null);
        var wall = Stopwatch.StartNew();
        using (var idle = new ManualResetEventSlim(false)) idle.Wait(TimeSpan.FromSeconds(1));
        double cpuMs = (CpuTime(perThread ? tids[1..] : null) - cpu0).TotalMilliseconds, wallMs = wall.Elapsed.TotalMilliseconds;
        // A spinning worker would burn a whole core; 5 % of one core is a generous bound (clock-tick granularity,
        // and in the whole-process case the runtime's own JIT and GC threads).
        Assert.True(cpuMs < 0.05 * wallMs, $"idle pool used {cpuMs:F1} ms of CPU in {wallMs:F0} ms ({(perThread ? "its 3 worker threads" : "whole process")})");
    }

    /// <summary>The OS id of the calling thread, from /proc/thread-self (0 where /proc does not say).</summary>
    private static int CurrentThreadId()
    {
        try
        {
            var target = new FileInfo("/proc/thread-self").LinkTarget; // "<pid>/task/<tid>"
            return target is not null && int.TryParse(Path.GetFileName(target), out int tid) ? tid : 0;
        }
        catch (IOException) { return 0; }
        catch (UnauthorizedAccessException) { return 0; }
    }

    private static TimeSpan CpuTime(int[]? tids)
    {
        using var proc = Process.GetCurrentProcess();
        if (tids is null) return proc.TotalProcessorTime;
        var total = TimeSpan.Zero;
        foreach (ProcessThread t in proc.Threads)
            if (tids.Contains(t.Id)) total += t.TotalProcessorTime;
        return total;
    }
}
