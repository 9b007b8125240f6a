using EdgeViT.Capture;
using Xunit;

namespace EdgeViT.Tests.Capture;

public sealed class LatestFrameQueueTests
{
    private sealed class CountingPool
    {
        public readonly Dictionary<Frame, int> Releases = [];
        public readonly Stack<Frame> Free = new();
        public void Release(Frame f)
        {
            lock (Releases)
            {
                Releases[f] = Releases.GetValueOrDefault(f) + 1;
                Free.Push(f);
            }
        }
    }

    [Fact]
    public async Task LatestFrameWinsAndDroppedFramesGoBack()
    {
        var pool = new CountingPool();
        using var queue = new LatestFrameQueue(pool.Release);
        var frames = Enumerable.Range(1, 3).Select(i => ScriptedSource.MakeFrame(i)).ToArray();
        queue.Publish(frames[0]);
        queue.Publish(frames[1]);
        queue.Publish(frames[2]);
        Assert.Equal((3L, 2L, 0L), (queue.Published, queue.Dropped, queue.Taken));
        Assert.Equal(1, pool.Releases[frames[0]]);
        Assert.Equal(1, pool.Releases[frames[1]]);

        var taken = await queue.TakeAsync();
        Assert.Same(frames[2], taken);
        Assert.Equal(1, queue.Taken);
        Assert.False(queue.HasFrame);

        // A waiting take is woken by the next publish.
        var pending = queue.TakeAsync();
        Assert.False(pending.IsCompleted);
        var next = ScriptedSource.MakeFrame(4);
        queue.Publish(next);
        Assert.Same(next, await pending);
        Assert.Equal((4L, 2L, 2L), (queue.Published, queue.Dropped, queue.Taken));
    }

    [Fact]
    public async Task FastProducerSlowConsumerCountsAddUp()
    {
        var pool = new CountingPool();
        using var queue = new LatestFrameQueue(pool.Release);
        const int total = 20_000;
        var producer = Task.Run(async () =>
        {
            for (int i = 1; i <= total; i++)
            {
                queue.Publish(ScriptedSource.MakeFrame(i));
                if (i % 2000 == 0) await Task.Delay(1);
            }
            queue.Complete();
        });
        var takenSequences = new List<long>();
        while (await queue.TakeAsync() is { } frame)
        {
            takenSequences.Add(frame.Sequence);
            if (takenSequences.Count % 5 == 0) await Task.Delay(1);   // slow consumer
            queue.Release(frame);
        }
        await producer;

        Assert.Equal(total, queue.Published);
        Assert.Equal(total, queue.Taken + queue.Dropped);
        Assert.Equal(takenSequences.Count, queue.Taken);
        Assert.True(queue.Dropped > 0, "a slow consumer must see drops");
        Assert.True(takenSequences.Zip(takenSequences.Skip(1)).All(p => p.First < p.Second), "frames arrive in order");
        Assert.Equal(total, pool.Releases.Count);                 // every frame went back exactly once
        Assert.All(pool.Releases.Values, n => Assert.Equal(1, n));
    }

    [Fact]
    public async Task PublishAndTakeAllocateNothingInSteadyState()
    {
        var pool = new CountingPool();
        var frames = Enumerable.Range(1, 4).Select(i => ScriptedSource.MakeFrame(i)).ToArray();
        foreach (var f in frames) pool.Free.Push(f);
        using var queue = new LatestFrameQueue(pool.Release);
        using var cts = new CancellationTokenSource();

        void Round(int n)
        {
            for (int i = 0; i < n; i++)
            {
                Frame f;
                lock (pool.Releases) f = pool.Free.Pop();
                queue.Publish(f);   // replaces (drops) the previous one every other time
                if (i % 2 == 1 && queue.TryTake(out var got)) queue.Release(got!);
            }
        }

        Round(1000);   // warm up (JIT, dictionary growth)
        long allocated = EdgeViT.Tests.Support.SteadyAllocation.Bytes(() => Round(10_000));
        Assert.True(allocated == 0, $"{allocated} bytes allocated for 10000 publishes");

        // A take that completes at once (frame waiting) with a cancellable token allocates nothing either.
        if (queue.TryTake(out var left)) queue.Release(left!);
        allocated = EdgeViT.Tests.Support.SteadyAllocation.Bytes(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                Frame f;
                lock (pool.Releases) f = pool.Free.Pop();
                queue.Publish(f);
                var vt = queue.TakeAsync(cts.Token);
                Assert.True(vt.IsCompletedSuccessfully);
#pragma warning disable xUnit1031 // completed synchronously (asserted above): reading it does not block
                queue.Release(vt.Result!);
#pragma warning restore xUnit1031
            }
        });
        Assert.True(allocated == 0, $"{allocated} bytes allocated for 1000 publish+take");
        await Task.CompletedTask;
    }

    [Fact]
    public async Task CancelledTakeThrowsAndTheQueueStaysUsable()
    {
        using var queue = new LatestFrameQueue(_ => { });
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(30));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queue.TakeAsync(cts.Token).AsTask());
        var frame = ScriptedSource.MakeFrame(1);
        var pending = queue.TakeAsync();
        queue.Publish(frame);
        Assert.Same(frame, await pending);
        Assert.Equal(0, queue.Dropped);
    }

    [Fact]
    public async Task CompleteWakesTheConsumerAndLaterPublishesAreReleased()
    {
        var released = new List<Frame>();
        using var queue = new LatestFrameQueue(released.Add);
        var pending = queue.TakeAsync();
        queue.Complete();
        Assert.Null(await pending);
        var late = ScriptedSource.MakeFrame(9);
        queue.Publish(late);
        Assert.Same(late, Assert.Single(released));
        Assert.Null(await queue.TakeAsync());
        Assert.Throws<InvalidOperationException>(() =>
        {
            using var q = new LatestFrameQueue(_ => { });
            _ = q.TakeAsync();
            _ = q.TakeAsync();
        });
    }
}
