using EdgeViT.Kernels.Model;
using Microsoft.ML.OnnxRuntime;

namespace EdgeViT.Host.Baselines;

/// <summary>
/// ONNX Runtime (CPU) running an image classifier at batch 1: the baseline EdgeViT races and checks itself against.
/// Configured as a fair competitor: graph optimisation ALL, <c>threads</c> intra-op threads, one inter-op thread,
/// sequential execution. The input and output are OrtValues created once over pinned managed arrays, so a run
/// allocates no tensors; <see cref="Run()"/> uses <see cref="Input"/>/<see cref="Output"/> in place.
/// Single-caller, like the engine.
/// </summary>
public sealed class OnnxRuntimeRunner : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions;
    private readonly float[] _input;
    private readonly float[] _output;
    private readonly OrtValue _inputValue;
    private readonly OrtValue _outputValue;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly OrtValue[] _inputValues;
    private readonly OrtValue[] _outputValues;

    public string ModelPath { get; }
    public int Threads { get; }
    public string InputName => _inputNames[0];
    public string OutputName => _outputNames[0];
    /// <summary>Input shape at batch 1, e.g. [1, 3, 224, 224].</summary>
    public IReadOnlyList<long> InputShape { get; }
    public IReadOnlyList<long> OutputShape { get; }
    public int InputLength => _input.Length;
    /// <summary>Number of logits (classes).</summary>
    public int OutputLength => _output.Length;

    /// <summary>The pinned input buffer (CHW of one image); write it, then call <see cref="Run()"/>.</summary>
    public Span<float> Input => _input;
    /// <summary>The logits of the last run.</summary>
    public ReadOnlySpan<float> Output => _output;

    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="ModelFormatException">ONNX Runtime cannot load it, or it is not a one-input float classifier.</exception>
    public OnnxRuntimeRunner(string onnxPath, int threads = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"ONNX model not found: {onnxPath}", onnxPath);
        ModelPath = onnxPath;
        Threads = threads;
        string file = Path.GetFileName(onnxPath);

        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            // Keep ORT's own log lines off stderr: failures arrive as exceptions.
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
        };
        // ORT's intra-op workers otherwise keep spinning after Run returns (tens of ms and more), taking the cores from
        // whatever runs next: in bench's alternation that is EdgeViT, whose 2-thread pass then ran at 1-thread speed.
        // They still spin during ORT's own Run, so ORT's time is unchanged (measured: 9.7 ms with, 10.3 without).
        options.AddSessionConfigEntry("session.force_spinning_stop", "1");
        try { _session = new InferenceSession(onnxPath, options); }
        catch (OnnxRuntimeException ex)
        {
            throw new ModelFormatException($"{file}: ONNX Runtime cannot load it: {FirstLine(ex.Message)}");
        }

        try
        {
            if (_session.InputMetadata.Count != 1 || _session.OutputMetadata.Count < 1)
                throw new ModelFormatException($"{file}: expected one input and at least one output, found {_session.InputMetadata.Count} and {_session.OutputMetadata.Count}");
            var (inName, inMeta) = _session.InputMetadata.First();
            var (outName, outMeta) = _session.OutputMetadata.First();
            if (!inMeta.IsTensor || inMeta.ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float ||
                !outMeta.IsTensor || outMeta.ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)
                throw new ModelFormatException($"{file}: input '{inName}' and output '{outName}' must be float32 tensors");
            long[] inShape = BatchOne(inMeta.Dimensions, file, inName);
            long[] outShape = BatchOne(outMeta.Dimensions, file, outName);
            InputShape = inShape;
            OutputShape = outShape;

            _input = new float[checked((int)inShape.Aggregate(1L, (a, b) => a * b))];
            _output = new float[checked((int)outShape.Aggregate(1L, (a, b) => a * b))];
            _inputValue = OrtValue.CreateTensorValueFromMemory(_input, inShape);
            _outputValue = OrtValue.CreateTensorValueFromMemory(_output, outShape);
            _inputNames = [inName];
            _outputNames = [outName];
            _inputValues = [_inputValue];
            _outputValues = [_outputValue];
            _runOptions = new RunOptions();
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>Runs on <see cref="Input"/>, writing <see cref="Output"/>.</summary>
    public void Run() => _session.Run(_runOptions, _inputNames, _inputValues, _outputNames, _outputValues);

    /// <summary>Copies <paramref name="chw"/> in, runs, copies the logits out.</summary>
    public void Run(ReadOnlySpan<float> chw, Span<float> logits)
    {
        if (chw.Length != _input.Length) throw new ArgumentException($"input has {chw.Length} floats, the model takes {_input.Length} ({Shape(InputShape)})", nameof(chw));
        if (logits.Length < _output.Length) throw new ArgumentException($"logits has room for {logits.Length}, the model gives {_output.Length}", nameof(logits));
        chw.CopyTo(_input);
        Run();
        _output.CopyTo(logits);
    }

    public static string Shape(IEnumerable<long> shape) => "[" + string.Join(",", shape) + "]";

    /// <summary>The ONNX file ORT runs for a model: the model itself if .onnx, else the sibling with the same stem.</summary>
    public static string? FindOnnxFor(string modelPath)
    {
        if (string.Equals(Path.GetExtension(modelPath), ".onnx", StringComparison.OrdinalIgnoreCase)) return modelPath;
        string sibling = Path.ChangeExtension(modelPath, ".onnx");
        return File.Exists(sibling) ? sibling : null;
    }

    // Dynamic first dimension -> batch 1; any other dynamic dimension cannot be fixed here.
    private static long[] BatchOne(int[] dims, string file, string name)
    {
        var shape = new long[dims.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] > 0) shape[i] = dims[i];
            else if (i == 0) shape[i] = 1;
            else throw new ModelFormatException($"{file}: '{name}' has a dynamic dimension {i} ([{string.Join(",", dims)}]); only the batch may be dynamic");
        }
        if (shape.Length == 0 || shape[0] != 1)
            throw new ModelFormatException($"{file}: '{name}' has shape [{string.Join(",", dims)}], expected a batch dimension of 1 or dynamic");
        return shape;
    }

    private static string FirstLine(string message) =>
        message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "(no message)";

    public void Dispose()
    {
        _inputValue.Dispose();
        _outputValue.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }
}
