using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Jit;

/// <summary>Kernels that write their output into a view of a larger buffer, with an epilogue at each element's last store
/// (<see cref="Kernel.CompileStore"/>), against the reference: every element of the view is the Relu of its initial value
/// plus the sum plus the residual's element, every float of the buffer outside the view is left as it was, and so is the
/// residual.</summary>
public class OutputStoreTests
{
    const float Guard = 12345f;

    /// <summary>A padded view of <paramref name="c"/>'s output: its variables in the output tensor's order, each with
    /// <paramref name="pad"/> elements more than its size, the innermost <paramref name="inner"/> apart.</summary>
    static long[] PaddedView(Computation c, int pad, int inner)
    {
        var view = new long[c.Vars.Length];
        long stride = inner;
        foreach (var v in c.Output.Index.Select(d => d[0].Var).Reverse())
        {
            view[v] = stride;
            stride *= c.Sizes[v] + pad;
        }
        return view;
    }

    /// <summary>Runs <paramref name="kernel"/> (its view, residual and Relu as compiled) on random inputs and checks it; null
    /// when right, else what is wrong. The output's initial values are random, in the view; or, with
    /// <paramref name="bias"/> (the init tensor), <paramref name="start"/>'s (the dense output's), and the view holds NaN.</summary>
    static unsafe string? Check(Kernel kernel, Random rng, float[]? bias = null, float[]? start = null)
    {
        var c = kernel.Computation;
        var store = kernel.Store!;
        var view = store.StridesFor(c);
        long length = kernel.OutputLength;
        var output = Enumerable.Repeat(Guard, (int)length + 8).ToArray();
        var residual = Enumerable.Repeat(-Guard, (int)length + 8).ToArray();
        // the dense output's element o sits at At(o) in the view
        long At(long o)
        {
            long at = 0;
            for (int v = 0; v < c.Vars.Length; v++)
                if (c.Output.VarStrides[v] != 0) at += o / c.Output.VarStrides[v] % c.Sizes[v] * view[v];
            return at;
        }
        var want = start?.ToArray() ?? new float[c.Output.Length];
        if (start is null) Reference.FillUniform(want, rng);
        for (long o = 0; o < want.Length; o++)
        {
            output[At(o)] = bias is null ? want[o] : float.NaN;
            residual[At(o)] = (float)(rng.NextDouble() * 2 - 1);
        }
        var residualBefore = residual.ToArray();
        float[] left = new float[c.Left.Length + kernel.ReadsPast], right = new float[c.Right.Length + kernel.ReadsPast];
        Reference.FillUniform(left, rng);
        Reference.FillUniform(right, rng);
        Reference.Run(c, want, left, right);
        fixed (float* po = output, pl = left, pr = right, pi = bias, pres = residual)
            kernel.Run(po, pl, pr, pi, store.Residual ? pres : null);
        double tolerance = Reference.Tolerance(c) * 64;
        var inView = new HashSet<long>();
        for (long o = 0; o < want.Length; o++)
        {
            long at = At(o);
            inView.Add(at);
            double expected = want[o] + (store.Residual ? residualBefore[at] : 0);
            if (store.Relu) expected = Math.Max(expected, 0);
            if (!(Math.Abs(output[at] - expected) <= tolerance * (1 + Math.Abs(expected))))
                return $"{c.Output.Name}[{KernelCheck.Index(c.Output, o)}] (view element {at}) = {output[at]}, want {expected}";
        }
        for (long at = 0; at < output.Length; at++)
            if (!inView.Contains(at) && output[at] != Guard) return $"element {at} of the buffer, outside the view, became {output[at]}";
        return residual.SequenceEqual(residualBefore) ? null : "the residual was written";
    }

    /// <summary>Case <paramref name="w"/> of a random test: a computation of <paramref name="kind"/>, a random walk of its
    /// schedule (every other one finished vectorized), and options that vary the vector width, the tails' masks and the
    /// tile's start from zero.</summary>
    static (Random Rng, Computation C, Nest Nest, List<LoopAction> Actions, JitOptions Options) Case(int seed, string kind, int w)
    {
        var rng = new Random(seed + kind.Length);
        var c = RandomSchedules.Of(kind, rng);
        var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(0, 20));
        if (w % 2 == 1) nest = RandomSchedules.FinishVectorized(nest, actions);
        return (rng, c, nest, actions, new JitOptions(MaxVectorBits: new[] { 512, 256, 128, 0 }[w % 4], MaskedTails: w % 3 != 0, ZeroTiles: w % 5 != 0));
    }

    [Theory]
    [MemberData(nameof(RandomSchedules.FiveBatches), MemberType = typeof(RandomSchedules))]
    public void Random_schedules_store_into_a_padded_view_with_the_epilogue_at_each_elements_last_store(string kind, int batch)
    {
        int checkedCount = 0, refused = 0, split = 0;
        var failures = new List<string>();
        for (int w = 0; w < 120; w++)
        {
            var (rng, c, nest, actions, options) = Case(9_100 * batch + w, kind, w);
            var store = new OutputStore(w % 3 == 2 ? null : PaddedView(c, rng.Next(0, 3), 1 + rng.Next(2)), Residual: w % 2 == 0, Relu: w % 4 < 2);
            var vectorVar = nest[^1].Annotation == Annotation.Vectorize ? nest[^1].Var : -1;
            bool summedLanes = vectorVar >= 0 && c.IsReduction[vectorVar] && options.MaxVectorBits > 0;
            if (summedLanes && store.HasEpilogue)
            {
                refused++;
                var e = Assert.Throws<ArgumentException>(() => Kernel.CompileStore(nest, store, options: options));
                Assert.Contains("no store is the last", e.Message);
                continue;
            }
            var kernel = Kernel.CompileStore(nest, store, options: options);
            if (Enumerable.Range(0, kernel.BlockStart).Any(l => c.IsReduction[nest[l].Var] && nest[l].Size > 1)) split++;
            checkedCount++;
            if (Check(kernel, rng) is { } p) failures.Add($"{RandomSchedules.Describe(c, actions)} [{KernelCheck.Describe(options)}] {store}: {p}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(5)));
        Assert.True(checkedCount >= 60 && split >= 3, $"{checkedCount} checked ({split} with a split sum), {refused} refused");
    }

    /// <summary>Schedules whose sum is split around the tile (each element stored once per split, the last with the epilogue),
    /// on one and two threads: a matrix product with its k in 4 parts outside the tile, in 3 parts and a tail, a blocked
    /// convolution with its channels split outside the rows, a plain one along its output channels (the tile's lanes an image
    /// apart, stored a run at a time where the machine allows: <see cref="TileRows"/>) with its channels split too, into a
    /// padded image's interior, and the last with its initial values from a bias.</summary>
    [Theory]
    [InlineData("mm 32 64 64", ">m:4 k:4 n:2 k:16 m:8u n:32v", 1)]
    [InlineData("mm 32 64 64", ">m:4p k:3+1 n:2 k:21 m:8u n:32v", 2)]
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=6 w=7 e=32 c=12 r=3 s=3", ">g:2p c:2 h:6 c:6 r:3 s:3 w:7u e:32v", 2)]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=32 h=5 w=12 c=8 r=3 s=3", ">h:5p c:2 w:2 c:4 r:3 s:3 w:6u f:32v pack=W", 2)]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=32 h=5 w=12 c=8 r=3 s=3", ">h:5 w:2 c:8 r:3 s:3 w:6u f:32v pack=W", 1)]
    public void A_split_sum_stores_its_partial_sums_and_only_the_last_with_the_epilogue(string spec, string schedule, int threads)
    {
        var c = Computation.Parse(spec);
        var nest = Nest.Parse(c, schedule);
        foreach (var (residual, relu) in new[] { (true, true), (true, false), (false, true) })
        {
            var store = new OutputStore(PaddedView(c, 2, 1), residual, relu);
            var kernel = Kernel.CompileStore(nest, store);
            kernel.SetThreads(threads);
            Assert.Null(Check(kernel, new Random(11)));
        }
        // and from a bias along the output's outermost variable, where the tile is loaded once per element
        if (!Kernel.CanInitialize(nest)) return;
        int outer = c.Output.Index[0][0].Var;
        var init = new long[c.Vars.Length];
        init[outer] = 1;
        var biased = Kernel.CompileStore(nest, new OutputStore(PaddedView(c, 1, 1), true, true), init);
        biased.SetThreads(threads);
        var bias = new float[c.Sizes[outer]];
        Reference.FillUniform(bias, new Random(2));
        var start = new float[c.Output.Length];
        for (long o = 0; o < start.Length; o++) start[o] = bias[o / c.Output.VarStrides[outer] % c.Sizes[outer]];
        Assert.Null(Check(biased, new Random(4), bias, start));
    }

    /// <summary>The inputs read through padded views (<see cref="InputViews"/>): each dimension of each input a few elements
    /// longer in the buffer than the tensor's, the extra ones NaN, so that a read of any of them into a result shows.</summary>
    [Theory]
    [MemberData(nameof(RandomSchedules.FiveBatches), MemberType = typeof(RandomSchedules))]
    public void Random_schedules_read_their_inputs_through_padded_views(string kind, int batch)
    {
        int checkedCount = 0;
        var failures = new List<string>();
        for (int w = 0; w < 100; w++)
        {
            var (rng, c, nest, actions, options) = Case(9_700 * batch + w, kind, w);
            long[] Padded(Tensor t)
            {
                var strides = new long[t.Shape.Length];
                long stride = 1;
                for (int d = t.Shape.Length - 1; d >= 0; d--) { strides[d] = stride; stride *= t.Shape[d] + rng.Next(0, 3); }
                return strides;
            }
            var views = new InputViews(Padded(c.Left), Padded(c.Right));
            if (nest.Packed != 0)
            {
                Assert.Throws<ArgumentException>(() => Kernel.CompileStore(nest, new OutputStore(), options: options, inputs: views));
                continue;
            }
            var kernel = Kernel.CompileStore(nest, new OutputStore(), options: options, inputs: views);
            checkedCount++;
            if (CheckViews(kernel, views, rng) is { } p) failures.Add($"{RandomSchedules.Describe(c, actions)} [{KernelCheck.Describe(options)}]: {p}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(5)));
        Assert.True(checkedCount >= 40, $"{checkedCount} checked");
    }

    /// <summary>Runs <paramref name="kernel"/> on random inputs laid out in their views (NaN elsewhere) and a dense output;
    /// null when it computes what the reference computes on the dense inputs.</summary>
    static unsafe string? CheckViews(Kernel kernel, InputViews views, Random rng)
    {
        var c = kernel.Computation;
        float[] Laid(Tensor t, IReadOnlyList<long> view, out float[] dense)
        {
            dense = new float[t.Length];
            Reference.FillUniform(dense, rng);
            var buffer = Enumerable.Repeat(float.NaN, (int)views.Length(c, c.Tensors.IndexOf(t)) + kernel.ReadsPast + 16).ToArray();
            for (long i = 0; i < t.Length; i++)
            {
                long at = 0, rest = i;
                for (int d = t.Shape.Length - 1; d >= 0; d--) { at += rest % t.Shape[d] * view[d]; rest /= t.Shape[d]; }
                buffer[at] = dense[i];
            }
            return buffer;
        }
        var left = Laid(c.Left, views.Left!, out var denseLeft);
        var right = Laid(c.Right, views.Right!, out var denseRight);
        var want = new float[c.Output.Length];
        Reference.FillUniform(want, rng);
        var got = want.ToArray();
        Reference.Run(c, want, denseLeft, denseRight);
        fixed (float* o = got, l = left, r = right) kernel.Run(o, l, r, null, null);
        double tolerance = Reference.Tolerance(c) * 64;
        for (int i = 0; i < want.Length; i++)
            if (!(Math.Abs(got[i] - want[i]) <= tolerance * (1 + Math.Abs(want[i])))) return $"{c.Output.Name}[{KernelCheck.Index(c.Output, i)}] = {got[i]}, want {want[i]}";
        return null;
    }

    [Fact]
    public void An_input_view_that_is_not_one_stride_per_dimension_or_is_packed_is_refused_naming_it()
    {
        var c = Computation.Matmul(16, 64, 8);
        var e = Assert.Throws<ArgumentException>(() => Kernel.CompileStore(Nest.Initial(c), new OutputStore(), inputs: new InputViews(Left: [8])));
        Assert.Contains("a stride for each of its 2 dimensions", e.Message);
        e = Assert.Throws<ArgumentException>(() => Kernel.CompileStore(Nest.Initial(c), new OutputStore(), inputs: new InputViews(Right: [-64, 1])));
        Assert.Contains("negative", e.Message);
        e = Assert.Throws<ArgumentException>(() => Kernel.CompileStore(Nest.Initial(c).WithPacked(1 << 2), new OutputStore(), inputs: new InputViews(Right: [72, 1])));
        Assert.Contains("never packed", e.Message);
        Assert.Equal(15 * 10 + 8, new InputViews(Left: [10, 1]).Length(c, 1)); // rows of 8 in rows of 10
    }

    [Theory]
    [InlineData(new long[] { 64, 1 }, "needs a stride for each")]                    // two strides for three variables
    [InlineData(new long[] { 64, 1, 1 }, "0 for a summed variable")]                // k is summed
    [InlineData(new long[] { -64, 1, 0 }, ">= 0")]
    [InlineData(new long[] { 32, 1, 0 }, "would overlap")]                          // rows of 64 columns 32 apart
    public void A_view_that_is_not_one_stride_per_variable_or_overlaps_is_refused_naming_it(long[] strides, string reason)
    {
        var nest = Nest.Initial(Computation.Matmul(16, 64, 8));
        var e = Assert.Throws<ArgumentException>(() => Kernel.CompileStore(nest, new OutputStore(strides)));
        Assert.Contains(reason, e.Message);
        Assert.Equal(15 * 66 + 64, new OutputStore([66, 1, 0]).Length(nest.Computation)); // rows of 64 in rows of 66
    }

    [Fact]
    public void A_kernel_with_a_residual_refuses_a_run_without_one()
    {
        var c = Computation.Matmul(8, 16, 8);
        var kernel = Kernel.CompileStore(Nest.Initial(c), new OutputStore(Residual: true));
        var (o, a, b) = (new float[128], new float[80], new float[160]);
        Assert.Throws<ArgumentNullException>(() => RunWithout(kernel, o, a, b));
        Assert.Throws<InvalidOperationException>(() => kernel.Run(o, a, b));
        var view = Kernel.CompileStore(Nest.Initial(c), new OutputStore([20, 1, 0]));
        Assert.Throws<ArgumentException>(() => view.Run(o, a, b)); // 8 rows 20 apart: 156 floats
    }

    static unsafe void RunWithout(Kernel kernel, float[] o, float[] a, float[] b)
    {
        fixed (float* po = o, pa = a, pb = b) kernel.Run(po, pa, pb, null, null);
    }
}
