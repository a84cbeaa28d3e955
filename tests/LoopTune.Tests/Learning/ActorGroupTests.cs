using LoopTune.Learning;
using LoopTune.Learning.Nn;
using Xunit;

namespace LoopTune.Tests.Learning;

/// <summary>The actor side of Ape-X as it crosses a process boundary: weights as one array, experience as flat arrays.</summary>
public class ActorGroupTests
{
    static readonly NetworkShape Shape = new("dqn", 4, 4, [16], "relu", true);

    [Fact]
    public void A_packed_batch_gives_back_every_transition_bit_for_bit()
    {
        var rng = new Random(3);
        float[] Floats(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f)];
        var ts = Enumerable.Range(0, 7).Select(i => new Transition(Floats(4), i % 4, (float)rng.NextDouble(), Floats(4),
            [.. Enumerable.Range(0, 4).Select(a => (a + i) % 3 != 0)], i % 2 == 0 ? 0.97f : 0)).ToList();
        var stats = new EpisodeStats();
        stats.Add(1.5, 20, 25, 2);
        var batch = ExperienceBatch.Pack(4, 4, 9, ts, [.. ts.Select((_, i) => 0.1 * i)], stats);

        Assert.Equal(7, batch.Count);
        for (int i = 0; i < ts.Count; i++)
        {
            var t = batch[i];
            Assert.Equal(ts[i].Observation, t.Observation);
            Assert.Equal(ts[i].NextObservation, t.NextObservation);
            Assert.Equal(ts[i].NextMask, t.NextMask);
            Assert.Equal((ts[i].Action, ts[i].Return, ts[i].Discount), (t.Action, t.Return, t.Discount));
        }
        var back = new EpisodeStats();
        batch.AddEpisodesTo(back);
        var (returns, finals, bests, starts) = back.Columns();
        Assert.Equal([1.5, 20, 25, 2], [returns.Single(), finals.Single(), bests.Single(), starts.Single()]);
    }

    [Fact]
    public void Flattened_weights_load_into_another_network_with_the_same_scores_and_a_wrong_length_is_refused()
    {
        var (from, to) = (new QNetwork(Shape, new Random(1)), new QNetwork(Shape, new Random(2)));
        var x = Net.Row([0.3f, -1, 0.5f, 2]);
        Assert.NotEqual(from.Forward(x).Data, to.Forward(x).Data);
        Net.LoadFlat(to, Net.Flatten(from));
        Assert.Equal(from.Forward(x).Data, to.Forward(x).Data);
        Assert.Throws<ArgumentException>(() => Net.LoadFlat(to, new float[3]));
    }

    [Fact]
    public void Greedy_actors_act_as_the_network_whose_weights_they_were_sent()
    {
        // epsilon = 0^(...) = 0: every action is the masked argmax of the weights sent, which the learner's network gives too
        var c = new ApexDqnConfig { EpsilonBase = 0, RolloutFragment = 6, NStep = 1 };
        var learner = new QNetwork(Shape, new Random(5));
        using var group = new DqnActorGroup(c, Shape, [new KeyChainEnv(), new KeyChainEnv()], first: 0, total: 2, seed: 1);
        group.SetWeights(Net.Flatten(learner));
        var batch = group.Collect();

        Assert.Equal(12, batch.Steps);
        Assert.Equal(12, batch.Count); // 1-step transitions: one per step
        Assert.Equal(4, batch.EpisodeReturns.Length); // KeyChainEnv's episodes are 3 steps long
        var probe = new KeyChainEnv();
        for (int i = 0; i < batch.Count; i++)
        {
            var t = batch[i];
            int position = Array.IndexOf(t.Observation, 1f);
            var mask = probe.Mask(position);
            Assert.Equal(Net.MaskedArgmax(learner.Forward(Net.Row(t.Observation)).Row(0), mask), t.Action);
            Assert.True(batch.Priorities[i] >= c.PriorityEpsilon);
        }
    }
}
