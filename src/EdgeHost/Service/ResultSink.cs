using EdgeViT.Host.Service.Inference;

namespace EdgeViT.Host.Service;

/// <summary>Results:Sink — where verdict lines go: stdout, a size-rotated file, or nowhere. Thread-safe.</summary>
public abstract class ResultSink : IVerdictSink, IDisposable
{
    /// <summary>Writes one JSON line (the newline is added here).</summary>
    public abstract void WriteLine(ReadOnlySpan<byte> json);
    public void Write(Verdict verdict, ReadOnlySpan<byte> json) => WriteLine(json);
    public virtual void Dispose() { }

    public static ResultSink Create(ResultsOptions o) => o.Sink switch
    {
        ResultsSinkKind.File => new RotatingFileSink(o.Path!, o.MaxBytes, o.MaxFiles),
        ResultsSinkKind.None => new NullSink(),
        _ => new StreamSink(Console.OpenStandardOutput()),
    };

    private sealed class NullSink : ResultSink
    {
        public override void WriteLine(ReadOnlySpan<byte> json) { }
    }
}

/// <summary>Verdicts to a stream (stdout): a line per verdict, flushed, so a pipe sees each at once.</summary>
public sealed class StreamSink(Stream stream) : ResultSink
{
    private readonly object _lock = new();

    public override void WriteLine(ReadOnlySpan<byte> json)
    {
        lock (_lock)
        {
            stream.Write(json);
            stream.WriteByte((byte)'\n');
            stream.Flush();
        }
    }

    public override void Dispose() => stream.Flush();
}

/// <summary>
/// Verdicts to a file that rotates when the next line would pass <c>maxBytes</c>: path -> path.1 -> ... ->
/// path.N (N = <c>maxFiles</c>; the oldest is deleted). Lines are never split across files. Rotated names are
/// built once, so steady-state writing allocates nothing.
/// </summary>
public sealed class RotatingFileSink : ResultSink
{
    private readonly object _lock = new();
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly string[] _rotated;
    private FileStream _stream;

    public RotatingFileSink(string path, long maxBytes, int maxFiles)
    {
        _path = Path.GetFullPath(path);
        _maxBytes = maxBytes;
        _rotated = Enumerable.Range(1, maxFiles).Select(i => $"{_path}.{i}").ToArray();
        if (Path.GetDirectoryName(_path) is { Length: > 0 } dir) Directory.CreateDirectory(dir);
        _stream = Open();
    }

    public string Path_ => _path;

    private FileStream Open() => new(_path, FileMode.Append, FileAccess.Write, FileShare.Read | FileShare.Delete, 64 * 1024);

    public override void WriteLine(ReadOnlySpan<byte> json)
    {
        lock (_lock)
        {
            if (_stream.Length > 0 && _stream.Length + json.Length + 1 > _maxBytes) Rotate();
            _stream.Write(json);
            _stream.WriteByte((byte)'\n');
            _stream.Flush();
        }
    }

    private void Rotate()
    {
        _stream.Dispose();
        if (_rotated.Length == 0) File.Delete(_path);
        else
        {
            File.Delete(_rotated[^1]);
            for (int i = _rotated.Length - 1; i > 0; i--)
                if (File.Exists(_rotated[i - 1])) File.Move(_rotated[i - 1], _rotated[i]);
            File.Move(_path, _rotated[0]);
        }
        _stream = Open();
    }

    public override void Dispose()
    {
        lock (_lock) _stream.Dispose();
    }
}
