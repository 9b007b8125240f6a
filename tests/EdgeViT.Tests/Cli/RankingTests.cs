using Xunit;
using EdgeViT.Host.Evaluation;

namespace EdgeViT.Tests.Cli;

public class RankingTests
{
    [Fact]
    public void TopKIsBestFirst()
    {
        float[] scores = [0.1f, 5f, -2f, 3f, 4f, 0f];
        Assert.Equal([1, 4, 3], Ranking.TopK(scores, 3));
        Assert.Equal([1], Ranking.TopK(scores, 1));
        Assert.Equal([1, 4, 3, 0, 5, 2], Ranking.TopK(scores, 6));
    }

    [Fact]
    public void KLargerThanTheScoresReturnsAll()
    {
        Assert.Equal([1, 0], Ranking.TopK([1f, 2f], 5));
        Assert.Empty(Ranking.TopK([], 5));
        Assert.Empty(Ranking.TopK([1f], 0));
    }

    [Fact]
    public void TiesGoToTheLowerIndex()
    {
        Assert.Equal([1, 3, 0], Ranking.TopK([1f, 7f, 1f, 7f], 3));
        Assert.Equal([0, 1, 2], Ranking.TopK([2f, 2f, 2f, 2f], 3));
    }

    [Fact]
    public void NaNRanksLast()
    {
        Assert.Equal([2, 1], Ranking.TopK([float.NaN, -1f, 3f], 2));
        Assert.Equal([1, 0], Ranking.TopK([float.NaN, -1f], 2));
    }

    [Fact]
    public void MatchesAFullSortOnRandomScores()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 50; trial++)
        {
            var scores = Enumerable.Range(0, 1000).Select(_ => (float)Math.Round(rng.NextDouble() * 20, 1)).ToArray();
            var expected = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(5).ToArray();
            Assert.Equal(expected, Ranking.TopK(scores, 5));
        }
    }

    [Fact]
    public void ArgMax()
    {
        Assert.Equal(2, Ranking.ArgMax([0f, 1f, 9f, 9f]));
        Assert.Equal(-1, Ranking.ArgMax([]));
    }

    [Fact]
    public void SoftmaxSumsToOneAndKeepsOrder()
    {
        float[] logits = [1f, 2f, 3f];
        var p = new float[3];
        Ranking.Softmax(logits, p);
        Assert.Equal(1.0, p.Sum(), 5);
        Assert.Equal(Math.Exp(3) / (Math.Exp(1) + Math.Exp(2) + Math.Exp(3)), p[2], 5);
        Assert.True(p[0] < p[1] && p[1] < p[2]);
    }

    [Fact]
    public void SoftmaxIsStableForLargeLogits()
    {
        var p = new float[2];
        Ranking.Softmax([1000f, 1000f], p);
        Assert.Equal(0.5f, p[0], 6);
        Ranking.Softmax([-1e30f, 0f], p);
        Assert.Equal(0f, p[0]);
        Assert.Equal(1f, p[1]);
    }

    [Fact]
    public void MedianAndPercentiles()
    {
        Assert.Equal(2.0, Statistics.Median([3.0, 1.0, 2.0]));
        Assert.Equal(2.5, Statistics.Median([4.0, 1.0, 2.0, 3.0]));
        Assert.Equal(0.0, Statistics.Median([]));
        double[] ten = [.. Enumerable.Range(1, 11).Select(i => (double)i)]; // 1..11
        Assert.Equal(2.0, Statistics.Percentile(ten, 10), 9);
        Assert.Equal(10.0, Statistics.Percentile(ten, 90), 9);
        Assert.Equal(1.0, Statistics.Percentile(ten, 0));
        Assert.Equal(11.0, Statistics.Percentile(ten, 100));
    }
}
