namespace EdgeViT.Host.Output;

// The JSON documents the commands print with --json; keys are the snake_case property names
// (see JsonOutput), e.g. EdgevitP10Ms -> "edgevit_p10_ms". Times in milliseconds unless the key says _s.

public sealed record PredictReport(
    string Model, string ModelConfig, int Threads, string Simd, IReadOnlyList<PredictImageResult> Results, double? Budget)
{
    public string Precision { get; init; } = "fp32";
}

/// <summary>Ms: the engine's Infer call for this image.</summary>
public sealed record PredictImageResult(string Image, double Ms, IReadOnlyList<PredictClass> Top, double Gflops, int[] TokensKeptPerBlock);

/// <summary>One ranked class; <c>Synset</c> and <c>Label</c> are null without --synsets.</summary>
public sealed record PredictClass(int Class, string? Synset, string? Label, double Prob);

/// <summary>Images: how many were evaluated; Top1/Top5 in percent; Ms*: the engine's Infer call per image.</summary>
public sealed record EvalReport(
    string Model, string ModelConfig, string ImagesDir, string Synsets, int Threads, string Simd, int Prefetch,
    int Images, double Top1, double Top5,
    double MsMedian, double MsP10, double MsP90, double MsMean,
    double DecodeMsMedian, double PreprocessMsMedian,
    double WallS, double ImagesPerS, double GflopsMean,
    string Split, double? Budget, double[]? TokensKeptPerBlock)
{
    public string Precision { get; init; } = "fp32";
}

/// <summary>Medians over alternated runs on the same input; Ratio is the median of the paired edgevit/ort ratios.</summary>
public sealed record BenchReport(
    string Model, string Onnx, string ModelConfig, string Input, int Threads, string Simd, int Iterations, int Warmup,
    double EdgevitMs, double EdgevitP10Ms, double EdgevitP90Ms,
    double OnnxruntimeMs, double OnnxruntimeP10Ms, double OnnxruntimeP90Ms,
    double Ratio, double RatioP10, double RatioP90,
    double MaxAbsLogitDiff, bool ArgmaxMatch, int EdgevitArgmax, int OnnxruntimeArgmax, double Gflops,
    double? Budget, double? EdgevitDenseMs, double? PrunedVsDense, double? DenseGflops, int Images)
{
    public string Precision { get; init; } = "fp32";
    // With --precision int8: EdgevitMs is the int8 engine (pruned with --thresholds; EdgevitDenseMs its dense run),
    // OnnxruntimeMs/Ratio are against ONNX Runtime fp32; ratios are medians of paired per-iteration ratios.
    public double? EdgevitFp32Ms { get; init; }
    public double? OnnxruntimeInt8Ms { get; init; }
    public double? OnnxruntimeFp32Ms { get; init; }
    public double? RatioVsFp32 { get; init; }
    public double? RatioVsOrtInt8 { get; init; }
    public double? RatioVsOrtFp32 { get; init; }
    /// <summary>With --thresholds: the int8 engine's dense run against the same baselines.</summary>
    public double? DenseRatioVsFp32 { get; init; }
    public double? DenseRatioVsOrtInt8 { get; init; }
    public double? DenseRatioVsOrtFp32 { get; init; }
    public double? MaxAbsLogitDiffInt8 { get; init; }
    public bool? ArgmaxMatchInt8 { get; init; }
    public string? OnnxInt8 { get; init; }
    /// <summary>With --profile: EdgeViT's mean ms per forward stage (Embed, LayerNorm, Qkv, Attention, ...).</summary>
    public Dictionary<string, double>? ProfileMs { get; init; }
}

/// <summary>What 'edgevit quantize' wrote.</summary>
public sealed record QuantizeReport(string Model, string Fingerprint, int Layers, string Scheme, string? Out, string? OnnxOut);

/// <summary>WorstFlopsGapPercent: the largest |measured/predicted - 1| over the sets, in percent.</summary>
public sealed record CalibrateReport(
    string Model, string Out, int Images, string Split, int Candidates, int Sets, double DenseGflops,
    double ProbeS, double PlanS, double FitS, double WallS, double PeakRssMib, double WorstFlopsGapPercent);

/// <summary>
/// One row of 'edgevit compare': a method at a budget (or dense, Budget 1). BudgetMatch: "exact" when the FLOPs
/// measured on the calibration subset are within 1 % of dense of the budget, "nearest" when the method's nearest
/// setting was taken, "reference" for dense. Gflops/FlopsFraction/OverheadGflops: means over the evaluation images;
/// Top1DiffPp: top-1 minus dense in percentage points with its paired bootstrap 95 % CI; McnemarB: images dense got
/// right and the method wrong, McnemarC: the reverse; McnemarP: exact two-sided p.
/// </summary>
public sealed record CompareRow(
    string Method, double Budget, string Setting, string BudgetMatch, double CalibrationFlopsFraction,
    double Gflops, double FlopsFraction, double OverheadGflops, double Top1, double Top5, double MsMedian,
    double Top1DiffPp, double Top1DiffCiLow, double Top1DiffCiHigh, int McnemarB, int McnemarC, double McnemarP, int Images);

/// <summary>Times in seconds: decoding both splits, method construction (RCTP calibration), budget matching, the evaluation pass, all.</summary>
public sealed record CompareReport(
    string Model, string ModelConfig, string ImagesDir, int CalibrationImages, int EvalImages, int MeasureImages, double[] Budgets,
    string[] Methods, int Workers, string Simd, int BootstrapResamples, IReadOnlyList<CompareRow> Rows,
    string ResultsCsv, string ResultsMd, string Plot, double DecodeS, double MethodsS, double MatchS, double EvalS, double WallS);
