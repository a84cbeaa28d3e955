using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Search;

namespace LoopTune.Tests.Learning;

/// <summary>The policies shipped in policies/: each loads as the network it says it is, and its greedy rollout on small
/// benchmarks of its kind takes legal actions only and ends in kernels that match the reference.</summary>
public class ShippedPolicyTests
{
    static IEnumerable<string> Names() => Directory.GetFiles(Policy.ShippedFolder, "*.safetensors").Select(f => Path.GetFileNameWithoutExtension(f)).Order();

    public static TheoryData<string> Shipped() => [.. Names()];

    [Fact]
    public void The_default_policy_is_shipped_next_to_the_program()
    {
        Assert.True(File.Exists(Policy.DefaultPath), $"{Policy.DefaultPath} is missing: the build copies policies/*.safetensors next to the program");
        Assert.Contains("default", Names());
    }

    [Fact]
    public void Default_means_the_shipped_policy_trained_on_the_computations_kind()
    {
        Assert.Contains("conv", Names());
        var conv = Computation.Parse("conv 8 10 10 8 3 3");
        Assert.Equal(Policy.ConvPath, Policy.Choose("default", conv));
        Assert.StartsWith("conv", Policy.Load(Policy.Choose("default", conv)).Metadata["looptune.dataset"], StringComparison.Ordinal);
        Assert.Equal(Policy.DefaultPath, Policy.Choose("default", Computation.Parse("mm 64 64 64"))); // nothing adapted in the tests' data folder
        Assert.Equal("some/run", Policy.Choose("some/run", conv));   // a policy named by the user is taken as it is
    }

    [Theory]
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=16 c=8 r=3 s=3", true)]   // channels blocked
    [InlineData("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=4 h=5 w=5 c=3 p=2 r=3 q=2", true)] // column phases
    [InlineData("O[n,f,h,w] += I[n,c,h+r,w+s] * W[f,c,r,s] n=2 f=4 h=6 w=6 c=3 r=3 s=3", true)]    // a batch
    [InlineData("C[b,m,n] += A[m,k] * B[b,k,n] b=2 m=4 n=30 k=3", false)]                          // a product over windows' columns
    [InlineData("mm 16 16 16", false)]
    public void A_convolution_in_any_layout_gets_the_convolution_policy(string spec, bool windows)
    {
        var c = Computation.Parse(spec);
        Assert.Equal(windows, c.HasWindows);
        Assert.Equal(windows ? Policy.ConvPath : Policy.DefaultPath, Policy.Choose("default", c));
    }

    [Fact]
    public void A_policy_search_asks_for_the_policy_of_each_computation()
    {
        var asked = new List<string>();
        var policy = Policy.Load("default");
        var search = new PolicySearch(c => { asked.Add(c.ToString()); return policy; }, "test", 1);
        foreach (var spec in new[] { "mm 16 16 16", "conv 4 6 6 4 3 3" })
            search.Run(Nest.Initial(Computation.Parse(spec)), new KernelEvaluator(), new SearchBudget(TimeSpan.FromSeconds(30), 12), 0);
        Assert.Equal([Computation.Parse("mm 16 16 16").ToString(), Computation.Parse("conv 4 6 6 4 3 3").ToString()], asked);
    }

    [Theory]
    [MemberData(nameof(Shipped))]
    public void A_shipped_policy_rolls_out_legally_to_kernels_that_match_the_reference(string name)
    {
        var policy = Policy.Load(name);
        Assert.Equal(ObservationEncoder.Size, policy.Shape.Observations);
        Assert.Equal(policy.Space.Count, policy.Shape.Actions);
        Assert.True(policy.Metadata.ContainsKey("looptune.trainer") && policy.Metadata.ContainsKey("looptune.dataset"), "a shipped policy says how it was trained");
        Assert.NotEmpty(policy.TrainedOn); // and on which machines
        Assert.True(policy.Metadata.ContainsKey("looptune.vector_bits"), "a shipped policy says at which vector widths it was trained");
        bool conv = policy.Metadata["looptune.dataset"].StartsWith("conv", StringComparison.Ordinal);
        var specs = conv ? new[] { "conv 8 10 10 8 3 3", "conv 16 18 10 8 3 3" } : ["mm 64 64 64", "mm 80 48 96"];
        foreach (var spec in specs)
        {
            var c = Computation.Parse(spec);
            var r = Rollout.Greedy(policy, c, new KernelEvaluator());
            var replay = Transforms.ApplyAll(Nest.Initial(c), r.Actions); // throws on an illegal action
            Assert.Equal(r.Final.ScheduleKey, replay.ScheduleKey);
            foreach (var nest in new[] { r.Final, r.Best })
            {
                var v = Verifier.Verify(Kernel.Compile(nest));
                Assert.True(v.Passed, $"{name} on {spec}: {nest.Serialize()} does not match the reference: {v.Problem}");
            }
        }
    }
}
