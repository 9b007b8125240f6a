namespace EdgeViT.Kernels.Model;

/// <summary>Builds the one-line "file: fault" messages of <see cref="ModelFormatException"/>.</summary>
internal static class ModelErrors
{
    public static ModelFormatException Fail(string file, string fault) => new(OneLine($"{file}: {fault}"));

    /// <summary>Names and JSON/parser messages may contain line breaks; callers print the message as one line.</summary>
    public static string OneLine(string text) =>
        text.Contains('\n') || text.Contains('\r')
            ? string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            : text;
}
