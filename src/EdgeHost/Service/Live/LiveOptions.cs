namespace EdgeViT.Host.Service;

/// <summary>LiveView:* — the live page at / and its MJPEG stream.</summary>
public sealed class LiveOptions
{
    /// <summary>Serve / (the page), /v1/stream.mjpeg, /v1/snapshot.jpg and /v1/live.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Most frames per second kept for the page and streamed (frames in between are not copied).</summary>
    [DoubleRange(0.1, 30)] public double Fps { get; set; } = 4;

    /// <summary>Dim every patch by how early token pruning dropped it and outline the model's crop.</summary>
    public bool Tokens { get; set; } = true;

    /// <summary>How far back the p95 latency and budget chart reaches.</summary>
    [IntRange(10, 3600)] public int HistorySeconds { get; set; } = 300;

    [IntRange(10, 100)] public int JpegQuality { get; set; } = 80;
}
