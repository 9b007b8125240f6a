using Xunit;
using System.Security.Cryptography;
using System.Text;

namespace EdgeViT.Tests.Support;

public class ManagedSha256Tests
{
    [Theory]
    [InlineData("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
    [InlineData("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")]
    public void MatchesFipsVectors(string message, string expected) =>
        Assert.Equal(expected, ManagedSha256.HexDigest(Encoding.ASCII.GetBytes(message)));

    [Fact]
    public void MatchesTheBclOnEveryPaddingCase()
    {
        var random = new Random(7);
        for (int length = 0; length < 300; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), ManagedSha256.HexDigest(data));
        }
    }
}
