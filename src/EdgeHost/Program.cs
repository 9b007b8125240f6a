return EdgeViT.Host.Cli.Run(args, Console.Out, Console.Error);
