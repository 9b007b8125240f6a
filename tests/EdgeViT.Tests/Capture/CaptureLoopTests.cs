using EdgeViT.Capture;
using Xunit;

namespace EdgeViT.Tests.Capture;

public sealed class CaptureLoopTests
{
    [Fact]
    public async Task PumpsAFiniteSourceIntoTheQueueAndCompletesIt()
    {
        await using var source = new SyntheticFrameSource(new SyntheticOptions { Width = 32, Height = 24, Fps = 200, FrameCount = 40 });
        using var queue = new LatestFrameQueue(source);
        await using var loop = new CaptureLoop(source, queue);
        loop.Start();
        int taken = 0;
        long last = 0;
        while (await queue.TakeAsync() is { } frame)
        {
            Assert.True(frame.Sequence > last);
            last = frame.Sequence;
            taken++;
            queue.Release(frame); // whether this consumer keeps up or not, every frame is taken or dropped (below)
        }
        await loop.Completion;
        Assert.Equal(40, loop.Frames);
        Assert.Equal(40, queue.Published);
        Assert.Equal(40, queue.Taken + queue.Dropped);
        Assert.Equal(taken, queue.Taken);
        Assert.Equal(40, last);   // the newest frame is never lost
        Assert.Null(loop.Fault);
        Assert.True(source.Pool.Created <= 4, $"{source.Pool.Created} frames allocated");
    }

    /// <summary>A source that delivers a frame only when the test permits one, and says when the loop asks for the next.</summary>
    private sealed class GatedSource : IFrameSource
    {
        private readonly SemaphoreSlim _permits = new(0), _asked = new(0);
        private long _sequence;
        public string Name => "gated";
        public ValueTask OpenAsync(CancellationToken ct) => ValueTask.CompletedTask;
        public async ValueTask<Frame?> NextAsync(CancellationToken ct)
        {
            _asked.Release(); // the loop has published the previous frame (it publishes, then asks)
            await _permits.WaitAsync(ct);
            return Interlocked.Read(ref _sequence) >= Last ? null : ScriptedSource.MakeFrame(Interlocked.Increment(ref _sequence));
        }
        public long Last { get; init; } = long.MaxValue;
        /// <summary>Lets one frame out and waits until the loop has published it.</summary>
        public async Task DeliverAsync()
        {
            _permits.Release();
            Assert.True(await _asked.WaitAsync(TimeSpan.FromSeconds(10)), "the capture loop did not ask for the next frame");
        }
        public Task<bool> FirstAskAsync() => _asked.WaitAsync(TimeSpan.FromSeconds(10));
        /// <summary>Lets the end (null) out: the loop completes and asks no more.</summary>
        public void End() => _permits.Release();
        public void Release(Frame frame) { }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task AConsumerThatFallsBehindGetsTheNewestFrameAndTheRestAreDropped()
    {
        var source = new GatedSource { Last = 4 };
        using var queue = new LatestFrameQueue(source);
        await using var loop = new CaptureLoop(source, queue);
        loop.Start();
        Assert.True(await source.FirstAskAsync());
        await source.DeliverAsync();                              // frame 1
        var first = (await queue.TakeAsync())!;
        Assert.Equal(1, first.Sequence);
        await source.DeliverAsync();                              // frame 2 waits...
        await source.DeliverAsync();                              // ...and frame 3 replaces it while the consumer is busy
        Assert.Equal((3L, 1L), (queue.Published, queue.Dropped));
        queue.Release(first);
        Assert.Equal(3, (await queue.TakeAsync())!.Sequence);     // the newest, not the oldest
        await source.DeliverAsync();                              // frame 4, taken at once
        Assert.Equal(4, (await queue.TakeAsync())!.Sequence);
        source.End();
        await loop.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(await queue.TakeAsync());
        Assert.Equal((4L, 1L, 3L), (loop.Frames, queue.Dropped, queue.Taken));
    }

    [Fact]
    public async Task ReopensAfterFailuresWithBackoffAndCountsErrors()
    {
        var source = new ScriptedSource { OpenFailuresLeft = 2 };
        source.Script.Enqueue(() => ScriptedSource.MakeFrame(1));
        source.Script.Enqueue(() => throw new FrameSourceException("camera lost"));
        source.Script.Enqueue(() => ScriptedSource.MakeFrame(2));
        using var queue = new LatestFrameQueue(source);
        await using var loop = new CaptureLoop(source, queue, new ReopenPolicy { InitialDelay = TimeSpan.FromMilliseconds(5) });
        loop.Start();
        var got = new List<long>();
        while (await queue.TakeAsync() is { } frame) got.Add(frame.Sequence);
        await loop.Completion;
        Assert.Equal(3, loop.Errors);        // two failed opens, one loss
        Assert.Equal(2, loop.Reopens);       // after the failed opens, and after the loss
        Assert.Equal(4, source.OpenCalls);
        Assert.Equal(2, loop.Frames);
        Assert.Equal("camera lost", loop.LastError);
        Assert.Contains(2L, got);
    }

    [Fact]
    public async Task GivesUpWhenThePolicySays()
    {
        var source = new ScriptedSource { OpenFailuresLeft = 100 };
        using var queue = new LatestFrameQueue(source);
        await using var loop = new CaptureLoop(source, queue, new ReopenPolicy { InitialDelay = TimeSpan.FromMilliseconds(1), MaxAttempts = 3 });
        loop.Start();
        Assert.Null(await queue.TakeAsync());
        await loop.Completion;
        Assert.IsType<FrameSourceException>(loop.Fault);
        Assert.Equal(3, loop.Errors);
    }

    [Fact]
    public async Task StopsCleanlyOnCancellation()
    {
        await using var source = new SyntheticFrameSource(new SyntheticOptions { Width = 16, Height = 16, Fps = 100 });
        using var queue = new LatestFrameQueue(source);
        using var cts = new CancellationTokenSource();
        await using var loop = new CaptureLoop(source, queue);
        loop.Start(cts.Token);
        var first = await queue.TakeAsync();
        Assert.NotNull(first);
        queue.Release(first!);
        cts.Cancel();
        var done = await Task.WhenAny(loop.Completion, Task.Delay(5000));
        Assert.Same(loop.Completion, done);
        Assert.Null(loop.Fault);
        Assert.True(queue.IsCompleted);
    }
}
