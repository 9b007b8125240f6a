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
            await Task.Delay(12);   // slower than capture: some frames are dropped
            queue.Release(frame);
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
