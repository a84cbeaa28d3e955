using LoopTune.Cluster;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Tests.Search;
using LoopTune.Tests.Store;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cluster;

/// <summary>Ape-X across silos of this process: actors on every worker, the learner here, a silo lost and back, with the
/// deterministic <see cref="FakeEvaluator"/> so no step is timed.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterTrainingTests : IDisposable
{
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);
    static readonly ApexDqnConfig Small = new() { Hidden = [16], ActorsPerWorker = 2, RolloutFragment = 3, LearningStarts = 8, BatchSize = 8, UpdatesPerStep = 0.5 };
    readonly TempFolder temp = new("looptune-cluster-train");

    public void Dispose() => temp.Dispose();

    TrainRequest Request(string actions = "loop")
    {
        var folder = temp["ds"];
        DatasetGenerator.Matmul("8:24:8,8:24:8", "8:24:8,8:24:8").Write(folder, 0.8, 0);
        return new TrainRequest
        {
            Dataset = folder, Iterations = 10, Workers = 1, Steps = 4, EvalSize = 2, EvalTime = TimeSpan.FromSeconds(1), Seed = 5, Out = temp["run"], Actions = actions,
        };
    }

    static TrainingWork.Handler Handler() => new(_ => new FakeEvaluator());

    [Fact]
    public async Task Actors_on_every_worker_feed_the_learner_a_lost_silo_loses_only_its_actors_and_a_silo_that_comes_back_acts_again()
    {
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        await silos.Start("host-a", [0], Handler());
        var b = await silos.Start("host-b", [1], Handler());
        await using var cluster = await silos.Connect();
        await cluster.WaitForWorkersAsync(2, Limit);
        var request = Request();
        using var site = new ClusterSite(cluster, request);
        using var trainer = await Task.Run(() => site.CreateTrainer(Small, Dataset.Load(request.Dataset)));

        var values = await Task.Run(trainer.Iterate);
        Assert.Equal(2, values["actor_batches"]); // both workers sent experience
        Assert.Equal(2 * Small.ActorsPerWorker * Small.RolloutFragment, trainer.EnvSteps);
        Assert.Equal(0.4, values["epsilon_max"], 6); // Ape-X's epsilons over the 4 actors of 2 workers
        for (int i = 0; i < 3; i++) await Task.Run(trainer.Iterate);
        Assert.True(values.ContainsKey("episodes"));

        await b.StopAsync(graceful: false); // host-b crashes
        await WaitFor(async () => (await cluster.Workers()).Length == 1);
        long before = trainer.EnvSteps;
        values = await Task.Run(trainer.Iterate);
        Assert.Equal(1, values["actor_batches"]); // training goes on with host-a's actors
        Assert.Equal(before + Small.ActorsPerWorker * Small.RolloutFragment, trainer.EnvSteps);
        Assert.True(values.ContainsKey("loss"), "the learner keeps learning");

        await silos.Start("host-b", [1], Handler()); // and comes back: new actors, sent the weights first
        await cluster.WaitForWorkersAsync(2, Limit);
        var back = await Task.Run(trainer.Iterate);
        Assert.Equal(2, back["actor_batches"]);

        // evaluations are items too: every benchmark once, with the learner's current policy
        var tests = Dataset.Load(request.Dataset).Test.Take(3).ToList();
        var eval = await Task.Run(() => site.Evaluate(Policy.FromNetwork(trainer.Policy, request.Steps, ActionSpace.Loop), tests, TimeSpan.FromSeconds(1)));
        Assert.Equal(tests.Select(t => t.Text).Order(), eval.Rows.Select(r => r.Benchmark).Order());
        Assert.All(eval.Rows, r => Assert.True(r.Best >= r.Start));
    }

    [Fact]
    public async Task The_cluster_trains_apex_dqn_only()
    {
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        await silos.Start("host-a", [0], Handler());
        await using var cluster = await silos.Connect();
        var error = Assert.Throws<ClusterError>(() => new ClusterSite(cluster, Request() with { Trainer = "ppo" }));
        Assert.Contains("ppo", error.Message);
    }

    static async Task WaitFor(Func<Task<bool>> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > Limit) throw new TimeoutException("the cluster did not notice the lost silo");
            await Task.Delay(100);
        }
    }
}
