namespace EdgeViT.Host.Output;

// The JSON documents the commands print with --json; keys are the snake_case property names
// (see JsonOutput), e.g. EdgevitP10Ms -> "edgevit_p10_ms". Times in milliseconds unless the key says _s.

public sealed record PredictReport(
    string Model, string ModelConfig, int Threads, string Simd, IReadOnlyList<PredictImageResult> Results, double? Budget);

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
    string Split, double? Budget, double[]? TokensKeptPerBlock);

/// <summary>Medians over alternated runs on the same input; Ratio is the median of the paired edgevit/ort ratios.</summary>
public sealed record BenchReport(
    string Model, string Onnx, string ModelConfig, string Input, int Threads, string Simd, int Iterations, int Warmup,
    double EdgevitMs, double EdgevitP10Ms, double EdgevitP90Ms,
    double OnnxruntimeMs, double OnnxruntimeP10Ms, double OnnxruntimeP90Ms,
    double Ratio, double RatioP10, double RatioP90,
    double MaxAbsLogitDiff, bool ArgmaxMatch, int EdgevitArgmax, int OnnxruntimeArgmax, double Gflops,
    double? Budget, double? EdgevitDenseMs, double? PrunedVsDense, double? DenseGflops, int Images);

/// <summary>WorstFlopsGapPercent: the largest |measured/predicted - 1| over the sets, in percent.</summary>
public sealed record CalibrateReport(
    string Model, string Out, int Images, string Split, int Candidates, int Sets, double DenseGflops,
    double ProbeS, double PlanS, double FitS, double WallS, double PeakRssMib, double WorstFlopsGapPercent);
