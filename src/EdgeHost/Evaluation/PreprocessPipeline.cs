using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using EdgeViT.Kernels.Imaging;

namespace EdgeViT.Host.Evaluation;

/// <summary>One preprocessed image handed from the pipeline to the consumer; return it with <see cref="PreprocessPipeline.Return"/>.</summary>
public sealed class PreparedImage(int length)
{
    public float[] Chw { get; } = new float[length];
    public int Index { get; internal set; } = -1;
    public string Path { get; internal set; } = "";
    public double DecodeMs { get; internal set; }
    public double PreprocessMs { get; internal set; }
    internal ExceptionDispatchInfo? Error { get; set; }
}

/// <summary>
/// Decodes and preprocesses images in order on one background thread while the caller runs inference:
/// a bounded producer/consumer over a fixed pool of <c>prefetch</c> buffers, so at most that many images are
/// ahead and nothing is allocated per image besides the decoder's pixels. Images come out in input order.
/// A decode error surfaces from <see cref="Next"/> for that image (same exception type). prefetch = 0 does
/// the work inline on the caller's thread.
/// </summary>
public sealed class PreprocessPipeline : IDisposable
{
    private readonly IReadOnlyList<string> _paths;
    private readonly ImagePreprocessor _preprocessor;
    private readonly BlockingCollection<PreparedImage>? _free;
    private readonly BlockingCollection<PreparedImage>? _ready;
    private readonly CancellationTokenSource _cancel = new();
    private readonly Thread? _producer;
    private readonly PreparedImage? _inline;
    private int _next;

    public PreprocessPipeline(IReadOnlyList<string> paths, ImagePreprocessor preprocessor, int prefetch = 2)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(prefetch);
        _paths = paths;
        _preprocessor = preprocessor;
        if (prefetch == 0)
        {
            _inline = new PreparedImage(preprocessor.OutputLength);
            return;
        }
        _free = new BlockingCollection<PreparedImage>(new ConcurrentQueue<PreparedImage>(), prefetch);
        _ready = new BlockingCollection<PreparedImage>(new ConcurrentQueue<PreparedImage>(), prefetch);
        for (int i = 0; i < prefetch; i++) _free.Add(new PreparedImage(preprocessor.OutputLength));
        _producer = new Thread(Produce) { IsBackground = true, Name = "edgevit-preprocess" };
        _producer.Start();
    }

    public int Count => _paths.Count;

    /// <summary>The next image in order; throws that image's decode/preprocess error.</summary>
    public PreparedImage Next()
    {
        if (_next >= _paths.Count) throw new InvalidOperationException("no more images");
        PreparedImage item;
        if (_inline is not null)
        {
            item = _inline;
            Fill(item, _next);
        }
        else
        {
            item = _ready!.Take(_cancel.Token);
        }
        _next++;
        item.Error?.Throw();
        return item;
    }

    public void Return(PreparedImage item)
    {
        if (_inline is null && !_cancel.IsCancellationRequested) _free!.Add(item);
    }

    private void Produce()
    {
        try
        {
            for (int i = 0; i < _paths.Count; i++)
            {
                var item = _free!.Take(_cancel.Token);
                Fill(item, i);
                _ready!.Add(item, _cancel.Token);
                if (item.Error is not null) return; // the consumer stops at the first error
            }
        }
        catch (OperationCanceledException) { }
        finally { _ready!.CompleteAdding(); }
    }

    private void Fill(PreparedImage item, int index)
    {
        item.Index = index;
        item.Path = _paths[index];
        item.Error = null;
        try
        {
            (item.DecodeMs, item.PreprocessMs) = Inputs.LoadImage(item.Path, _preprocessor, item.Chw);
        }
        catch (Exception ex)
        {
            item.Error = ExceptionDispatchInfo.Capture(ex);
        }
    }

    public void Dispose()
    {
        _cancel.Cancel();
        _producer?.Join();
        _free?.Dispose();
        _ready?.Dispose();
        _cancel.Dispose();
    }
}
