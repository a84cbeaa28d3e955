using LoopTune.Learning;

namespace LoopTune.Tests.Learning;

/// <summary>The prioritized replay's flat storage against a plain list of the transitions added: what is read back, across
/// its storage chunks and after the oldest are evicted, is what was added in that slot last.</summary>
public sealed class ReplayStorageTests
{
    static Transition Make(int k, int observations, int actions) =>
        new([.. Enumerable.Range(0, observations).Select(j => k + j / 1000f)], k % actions, k * 0.5f,
            [.. Enumerable.Range(0, observations).Select(j => -k - j / 1000f)], [.. Enumerable.Range(0, actions).Select(a => (k + a) % 3 == 0)], k % 2 == 0 ? 0 : 0.9f);

    [Fact]
    public void Reads_back_each_slots_last_transition_across_chunks_and_evictions()
    {
        const int Capacity = 9_000, Observations = 3, Actions = 5;   // three storage chunks, the last one short
        var replay = new PrioritizedReplay(Capacity, alpha: 0.6);
        var expected = new Transition[Capacity];
        for (int k = 0; k < Capacity + 2_500; k++)
        {
            var t = Make(k, Observations, Actions);
            if (k % 2 == 0) replay.Add(t, 1 + k % 7);
            else replay.Add(t.Observation, t.Action, t.Return, t.NextObservation, t.NextMask, t.Discount, 1 + k % 7);
            expected[k % Capacity] = t;
        }
        Assert.Equal(Capacity, replay.Count);
        for (int i = 0; i < Capacity; i++)
        {
            var (want, got) = (expected[i], replay[i]);
            Assert.Equal(want.Observation, got.Observation);
            Assert.Equal(want.NextObservation, got.NextObservation);
            Assert.Equal(want.NextMask, got.NextMask);
            Assert.Equal((want.Action, want.Return, want.Discount), (replay.Action(i), replay.Return(i), replay.Discount(i)));
            Assert.Equal(want.Observation, replay.Observation(i).ToArray());
        }
    }

    [Fact]
    public void Refuses_a_transition_of_another_size_and_a_slot_never_filled()
    {
        var replay = new PrioritizedReplay(4, alpha: 1);
        replay.Add(Make(0, 3, 2));
        Assert.Throws<ArgumentException>(() => replay.Add(Make(1, 4, 2)));
        Assert.Throws<ArgumentException>(() => replay.Add(Make(1, 3, 3)));
        Assert.Equal(1, replay.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => replay[1]);
    }
}
