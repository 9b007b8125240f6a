using EdgeViT.Capture;

namespace EdgeViT.Host.Service.Inference;

/// <summary>
/// Where every verdict goes, whatever asked for it (camera, trigger, HTTP, any other request source). Register an
/// implementation as <c>services.AddSingleton&lt;IVerdictSink, MySink&gt;()</c>; the inference worker calls all of
/// them, in registration order, on the inference thread, right after each classification.
/// <para>Rules: return quickly (hand slow I/O to your own queue or thread: the engine waits for you); copy what you
/// keep (<paramref name="json"/> and <paramref name="verdict"/> are reused for the next frame); an exception is
/// counted as edgevit.errors{kind=results} and logged, never fatal. Implement <see cref="IDisposable"/> to be
/// disposed with the host.</para>
/// </summary>
public interface IVerdictSink
{
    /// <param name="verdict">The verdict, filled in place (valid during the call only).</param>
    /// <param name="json">The verdict as one compact JSON object, no newline (valid during the call only).</param>
    void Write(Verdict verdict, ReadOnlySpan<byte> json);
}

/// <summary>Drives Trigger:Gpio:OutputPin when top-1 is Trigger:Gpio:OutputClass with at least OutputMinScore.</summary>
public sealed class GpioOutputSink(IGpioOutput output, int outputClass, double minScore) : IVerdictSink, IDisposable
{
    public void Write(Verdict verdict, ReadOnlySpan<byte> json)
    {
        if (verdict.Count > 0 && verdict.Classes[0] == outputClass && verdict.Scores[0] >= minScore) output.Pulse();
    }

    public void Dispose() => output.Dispose();

    /// <summary>The sink for the options, or null without an output pin. Throws for an OutputClass the model lacks.</summary>
    public static GpioOutputSink? Create(GpioOptions o, LoadedModel model, FrameSourceFactory devices)
    {
        if (o.OutputPin < 0) return null;
        int cls = ResolveClass(o.OutputClass, model);
        return devices.CreateGpioOutput(o) is { } output ? new GpioOutputSink(output, cls, o.OutputMinScore) : null;
    }

    private static int ResolveClass(string? text, LoadedModel model)
    {
        if (int.TryParse(text, out int index) && index >= 0 && index < model.Config.Classes) return index;
        if (text is not null && model.Synsets?.IndexOf(text.Trim()) is int i) return i;
        throw new ServiceConfigException($"Trigger:Gpio:OutputClass must be a class index 0..{model.Config.Classes - 1} or a synset id of the Synsets file (got '{text}')");
    }
}
