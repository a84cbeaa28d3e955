using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using LoopTune.Ir;
using LoopTune.Jit;

// Micro-benchmarks of the engine with BenchmarkDotNet: `dotnet run -c Release --project bench/LoopTune.Bench`.
// The performance report that compares against the peers is `looptune bench`; this project is for profiling pieces.
BenchmarkSwitcher.FromAssembly(typeof(CompileBenchmarks).Assembly).Run(args);

/// <summary>How long the JIT takes, from nest to callable machine code.</summary>
[MemoryDiagnoser]
public class CompileBenchmarks
{
    const string Good = "split_4,down,swap_down,swap_down,unroll,up,up,split_32,down,swap_down,swap_down,split_16,unroll,down,vectorize";
    Nest initial = null!, tiled = null!;

    [GlobalSetup]
    public void Setup()
    {
        var c = Computation.Matmul(256, 256, 256);
        initial = Nest.Initial(c);
        tiled = Transforms.ApplyAll(initial, Actions.ParseList(Good));
        Kernel.WarmUp();
    }

    [Benchmark] public Kernel CompileUnscheduled() => Kernel.Compile(initial);
    [Benchmark] public Kernel CompileRegisterTiled() => Kernel.Compile(tiled);
    [Benchmark] public bool[] Mask() => Transforms.Mask(tiled);
}
