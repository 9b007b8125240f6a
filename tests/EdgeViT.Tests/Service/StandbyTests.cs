using System.Net;
using System.Text.Json;
using EdgeViT.Capture;
using EdgeViT.Host.Service;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>Trigger:Mode http closes the source after Trigger:StandbyAfterMs without requests (issue 9, bar 4: idle CPU).</summary>
[Collection(ServiceHostCollection.Name)]
public class StandbyTests
{
    /// <summary>
    /// Synthetic cameras that number their frames across every instance (so "captured after the request" is checkable
    /// across a reopen), count opens and closes, and can be unplugged (open fails).
    /// </summary>
    private sealed class CountingCameras : FrameSourceFactory
    {
        private long _produced;
        private int _created, _closed, _calledClosed;
        private TaskCompletionSource _frame = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Unplugged;
        public long Produced => Interlocked.Read(ref _produced);
        public int Created => Volatile.Read(ref _created);
        public int Closed => Volatile.Read(ref _closed);
        /// <summary>NextAsync calls on a closed camera: must stay 0.</summary>
        public int CalledClosed => Volatile.Read(ref _calledClosed);

        /// <summary>Completes with the next frame any camera produces.</summary>
        public Task NextFrame => Volatile.Read(ref _frame).Task;

        public override IFrameSource? Create(SourceOptions o)
        {
            Interlocked.Increment(ref _created);
            return new Camera(this, new SyntheticFrameSource(new SyntheticOptions { Width = 64, Height = 48, Fps = 50 }));
        }

        private sealed class Camera(CountingCameras owner, SyntheticFrameSource inner) : IFrameSource
        {
            private volatile bool _closed;
            public string Name => "counting camera";

            public ValueTask OpenAsync(CancellationToken ct) =>
                owner.Unplugged ? throw new FrameSourceException("test camera unplugged") : inner.OpenAsync(ct);

            public async ValueTask<Frame?> NextAsync(CancellationToken ct)
            {
                if (_closed) Interlocked.Increment(ref owner._calledClosed);
                var frame = await inner.NextAsync(ct);
                if (frame is null) return null;
                frame.Sequence = Interlocked.Increment(ref owner._produced);
                Interlocked.Exchange(ref owner._frame, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                return frame;
            }

            public void Release(Frame frame) => inner.Release(frame);

            public async ValueTask DisposeAsync()
            {
                _closed = true;
                Interlocked.Increment(ref owner._closed);
                await inner.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The fake clock, with timers that fire a millisecond before they are due, as system timers may (they count
    /// whole milliseconds, the clock counts ticks).
    /// </summary>
    private sealed class EarlyTimers(FakeTimeProvider clock) : TimeProvider
    {
        private static readonly TimeSpan Early = TimeSpan.FromMilliseconds(1);
        public override long TimestampFrequency => clock.TimestampFrequency;
        public override long GetTimestamp() => clock.GetTimestamp();
        public override DateTimeOffset GetUtcNow() => clock.GetUtcNow();
        public override TimeZoneInfo LocalTimeZone => clock.LocalTimeZone;
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            new Timer(clock.CreateTimer(callback, state, Soon(dueTime), period));
        private static TimeSpan Soon(TimeSpan due) => due > Early ? due - Early : due;

        private sealed class Timer(ITimer inner) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(Soon(dueTime), period);
            public void Dispose() => inner.Dispose();
            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static async Task<(HttpStatusCode Status, JsonElement Json)> ClassifySourceFrame(TestService service)
    {
        using var response = await service.Http.PostAsync("/v1/classify", new ByteArrayContent([]));
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    [Fact(Timeout = 120_000)]
    public async Task HttpModeClosesTheSourceWhenIdleAndARequestOpensItForAFreshFrame()
    {
        var cameras = new CountingCameras();
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "synthetic";
        config["Trigger:Mode"] = "http";
        config["Trigger:StandbyAfterMs"] = "5000";
        await using var service = await TestService.StartAsync(config, s =>
        {
            s.AddSingleton<FrameSourceFactory>(cameras);
            s.AddSingleton<TimeProvider>(new EarlyTimers(clock));
        });
        var sessions = service.App.Services.GetRequiredService<SourceSessions>();
        var status = service.Status;

        // Start-up opened the camera (a missing one would fail start-up) and it captures until the idle period ends.
        await cameras.NextFrame.WaitAsync(Patience);
        Assert.Equal(1, cameras.Created);
        long producedBefore = cameras.Produced;
        var (code, verdict) = await ClassifySourceFrame(service);
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.True(verdict.GetProperty("sequence").GetInt64() > producedBefore, verdict.ToString()); // not a frame that waited

        var changed = sessions.ChangedAsync(default);
        clock.Advance(TimeSpan.FromMilliseconds(4999)); // the request re-armed the idle period: not yet (the early timer fired)
        Assert.False(changed.IsCompleted);
        Assert.NotNull(status.Session);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        await changed.WaitAsync(Patience);

        // Standby: the camera is closed and its capture thread has ended, so nothing captures; still ready.
        Assert.True(status.SourceStandby);
        Assert.Null(status.Session);
        Assert.Equal(1, cameras.Closed);
        long capturedAtStandby = status.Captured, producedAtStandby = cameras.Produced;
        var ready = await service.GetJsonAsync("/readyz");
        Assert.True(ready.GetProperty("ready").GetBoolean());
        Assert.True(ready.GetProperty("source_standby").GetBoolean());
        var source = (await service.GetJsonAsync("/v1/status")).GetProperty("source");
        Assert.True(source.GetProperty("standby").GetBoolean());
        Assert.Equal("counting camera", source.GetProperty("name").GetString());

        // A request in standby opens a new camera and is answered with a frame captured after it arrived.
        Assert.Equal(producedAtStandby, cameras.Produced);
        (code, verdict) = await ClassifySourceFrame(service);
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal(2, cameras.Created);
        Assert.True(verdict.GetProperty("sequence").GetInt64() > producedAtStandby, verdict.ToString());
        Assert.False(status.SourceStandby);
        Assert.True(status.Captured > capturedAtStandby); // the closed session's frames still count
        Assert.Equal(2, status.Classified);

        // Unplugged while in standby: the request fails at once with the reason, and the next one after replugging works.
        changed = sessions.ChangedAsync(default);
        clock.Advance(TimeSpan.FromMilliseconds(5000));
        await changed.WaitAsync(Patience);
        Assert.True(status.SourceStandby);
        cameras.Unplugged = true;
        (code, verdict) = await ClassifySourceFrame(service);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, code);
        Assert.Equal("source counting camera could not be opened: test camera unplugged", verdict.GetProperty("error").GetString());
        Assert.True(status.SourceStandby);
        Assert.Contains("test camera unplugged", (await service.GetJsonAsync("/v1/status")).GetProperty("source").GetProperty("last_error").GetString());
        cameras.Unplugged = false;
        (code, _) = await ClassifySourceFrame(service);
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal(4, cameras.Created); // the failed open made one too
        Assert.Equal(0, cameras.CalledClosed);
    }

    [Fact(Timeout = 120_000)]
    public async Task StandbyAfterZeroKeepsCapturing()
    {
        var cameras = new CountingCameras();
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "synthetic";
        config["Trigger:Mode"] = "http";
        config["Trigger:StandbyAfterMs"] = "0";
        await using var service = await TestService.StartAsync(config, s =>
        {
            s.AddSingleton<FrameSourceFactory>(cameras);
            s.AddSingleton<TimeProvider>(clock);
        });
        clock.Advance(TimeSpan.FromDays(1));
        long before = cameras.Produced;
        for (int i = 0; i < 3; i++) await cameras.NextFrame.WaitAsync(Patience); // still capturing
        Assert.True(cameras.Produced >= before + 3);
        Assert.False(service.Status.SourceStandby);
        Assert.Equal((1, 0), (cameras.Created, cameras.Closed));
    }
}
