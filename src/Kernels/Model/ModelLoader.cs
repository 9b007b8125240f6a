using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace EdgeViT.Kernels.Model;

/// <summary>The model file formats <see cref="ModelLoader"/> reads.</summary>
public enum ModelFileFormat { SafeTensors, Onnx }

/// <summary>
/// Loads a ViT/DeiT from .safetensors or .onnx, chosen by content (the extension only breaks ties).
/// Failures are a <see cref="FileNotFoundException"/> naming the path, or a <see cref="ModelFormatException"/>
/// whose message is one line naming the file and the fault; a corrupt file never surfaces as a parser's
/// internal exception.
/// </summary>
public static partial class ModelLoader
{
    public static VitWeights Load(string path)
    {
        var tensors = LoadTensors(path);
        string file = Path.GetFileName(path);
        var weights = Guarded(file, () => VitWeights.FromTensors(tensors));
        RejectBlocksBeyondDepth(tensors, weights.Config.Depth, file);
        return weights;
    }

    /// <summary>The file's tensors under timm's names and its metadata, before any shape checks.</summary>
    public static TensorSet LoadTensors(string path)
    {
        var format = DetectFormat(path);
        return Guarded(Path.GetFileName(path), () => format == ModelFileFormat.SafeTensors
            ? SafeTensorsReader.Read(path)
            : OnnxWeightsReader.Read(path));
    }

    /// <summary>Sniffs the first bytes: safetensors starts with a plausible header length then '{'; ONNX with a ModelProto field.</summary>
    public static ModelFileFormat DetectFormat(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(Directory.Exists(path) ? $"model path is a directory, not a file: {path}" : $"model file not found: {path}", path);
        string file = Path.GetFileName(path);
        Span<byte> head = stackalloc byte[16];
        long length;
        int read;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1))
        {
            length = stream.Length;
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        if (length == 0) throw ModelErrors.Fail(file, "the file is empty (0 bytes); not a .safetensors or .onnx model");

        bool safetensors = LooksLikeSafeTensors(head[..read]);
        bool onnx = LooksLikeOnnx(head[..read], length);
        string extension = Path.GetExtension(path).ToLowerInvariant();
        if (safetensors && onnx) return extension == ".onnx" ? ModelFileFormat.Onnx : ModelFileFormat.SafeTensors;
        if (safetensors) return ModelFileFormat.SafeTensors;
        if (onnx) return ModelFileFormat.Onnx;
        string despite = extension is ".onnx" or ".safetensors" ? $" despite its {extension} extension" : "";
        throw ModelErrors.Fail(file, $"not a .safetensors or .onnx model (the content matches neither format{despite})");
    }

    private static bool LooksLikeSafeTensors(ReadOnlySpan<byte> head) =>
        head.Length >= 9
        && BinaryPrimitives.ReadUInt64LittleEndian(head) is >= 2 and <= SafeTensorsReader.MaxHeaderBytes
        && head[8] == (byte)'{';

    /// <summary>The first field must be one a ModelProto has, with its wire type: in practice ir_version.</summary>
    private static bool LooksLikeOnnx(ReadOnlySpan<byte> head, long fileLength)
    {
        var reader = new ProtoReader(head);
        try
        {
            if (!reader.TryReadTag(out int field, out var wire) || wire is not (WireType.Varint or WireType.LengthDelimited)) return false;
            ulong value = reader.ReadVarint(); // the value, or a length
            return (field, wire) switch
            {
                (1, WireType.Varint) => value is >= 1 and <= 100, // ir_version (11 in 2025)
                (5, WireType.Varint) => true, // model_version
                (2 or 3 or 4 or 6 or 7 or 8 or 14 or 20 or 25, WireType.LengthDelimited) => value < (ulong)fileLength,
                _ => false,
            };
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>Turns a parser's exception on corrupt input into the one-line error the callers print.</summary>
    private static T Guarded<T>(string file, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException or JsonException or FormatException
                                       or IndexOutOfRangeException or ArgumentException or OverflowException
                                       or InvalidOperationException or KeyNotFoundException or InvalidCastException)
        {
            throw ModelErrors.Fail(file, $"corrupt or unsupported model file ({ex.GetType().Name}: {ex.Message})");
        }
    }

    /// <summary>
    /// The depth is inferred from consecutive blocks.{i}.attn.qkv.weight, so a file missing one block's qkv
    /// would otherwise load as a shallower model, silently dropping the blocks after it.
    /// </summary>
    private static void RejectBlocksBeyondDepth(TensorSet tensors, int depth, string file)
    {
        foreach (var name in tensors.Tensors.Keys)
        {
            var m = BlockTensor().Match(name);
            if (m.Success && (!int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int block) || block >= depth))
                throw ModelErrors.Fail(file, $"missing tensor 'blocks.{depth}.attn.qkv.weight' (but '{name}' is present)");
        }
    }

    [GeneratedRegex(@"^blocks\.(\d+)\.", RegexOptions.CultureInvariant)]
    private static partial Regex BlockTensor();
}
