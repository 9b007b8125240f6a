using System.CommandLine;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Quant;

namespace EdgeViT.Host.Commands;

/// <summary>
/// <c>edgevit quantize --model FILE [--out FILE] [--onnx-out FILE]</c>: int8 weights (symmetric, per output channel)
/// of the block linear layers, as a file the engine loads (<c>--quantized</c>) and/or as an ONNX graph for ONNX
/// Runtime in the pattern of its own quantize_dynamic (the int8 baseline).
/// </summary>
public static class QuantizeCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("fp32 model weights (.safetensors or .onnx).");
        var output = new Option<string?>("--out", "-o")
        {
            Description = "Write EdgeViT's int8 weights file here (bound to the model's fingerprint; load with --quantized FILE).",
            HelpName = "FILE",
        };
        var onnxOut = new Option<string?>("--onnx-out")
        {
            Description = "Write an int8 ONNX graph (DynamicQuantizeLinear + MatMulInteger, per-channel weight scales) for ONNX Runtime here.",
            HelpName = "FILE",
        };
        var json = CommonOptions.Json();
        var command = new Command("quantize", "int8 weights of the block linear layers: an EdgeViT weights file and/or an ONNX Runtime graph.")
        {
            model, output, onnxOut, json,
        };
        command.SetAction(parse => Run(stdout, parse.GetRequiredValue(model), parse.GetValue(output), parse.GetValue(onnxOut), parse.GetValue(json)));
        return command;
    }

    public static int Run(TextWriter stdout, string modelPath, string? output, string? onnxOut, bool json)
    {
        if (output is null && onnxOut is null) throw new UsageException("quantize needs --out FILE and/or --onnx-out FILE");
        Inputs.RequireFile(modelPath, "model file");
        foreach (var path in new[] { output, onnxOut })
            if (path is not null && Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir && !Directory.Exists(dir))
                throw new InputException($"output folder does not exist: {dir}");
        var weights = Inputs.LoadModel(modelPath);
        var quantized = QuantizedWeights.Quantize(weights);
        if (output is not null) QuantizedFile.Save(output, quantized, weights);
        if (onnxOut is not null) OnnxGraphWriter.Write(onnxOut, weights, quantized);
        int layers = quantized.Layers().Count();
        var report = new QuantizeReport(modelPath, weights.Fingerprint, layers, QuantizedFile.Scheme, output, onnxOut);
        if (json) JsonOutput.WriteLine(stdout, report, ReportJsonContext.Default.QuantizeReport);
        else
        {
            stdout.WriteLine($"model {modelPath} ({weights.Config.Describe()}): {layers} linear layers to int8 ({QuantizedFile.Scheme})");
            if (output is not null) stdout.WriteLine($"wrote {output} (EdgeViT int8 weights; use --quantized {output})");
            if (onnxOut is not null) stdout.WriteLine($"wrote {onnxOut} (ONNX int8 graph for ONNX Runtime)");
        }
        return ExitCodes.Ok;
    }
}
