import io.micrometer.core.instrument.Clock;
import io.micrometer.core.instrument.Timer;
import io.micrometer.registry.otlp.OtlpConfig;
import io.micrometer.registry.otlp.OtlpMeterRegistry;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A server timer exported by Micrometer's own OTLP registry (micrometer-registry-otlp), named and
 * tagged as Spring Boot's server observation names and tags it: `http.server.requests` with
 * `method`, `uri`, `status`, `outcome`, `exception`. test/interop/micrometer.test.ts runs it against
 * pullback's OTLP/HTTP receiver.
 *
 * usage: MicrometerPeer --url URL --resource k=v,k=v [--step 1s] [--temporality cumulative|delta]
 *        [--base-time-unit milliseconds|seconds] --requests COUNT:STATUS:LATENCY_MS[,...]
 *        [--batches N] [--pause-ms MS] [--percentiles 0.5,0.99] [--histogram none|explicit|exponential]
 *
 * --percentiles: client-side percentiles (Spring Boot's
 * `management.metrics.distribution.percentiles`), which make Micrometer export the timer as an OTLP
 * Summary instead of a Histogram. --histogram: `publishPercentileHistogram` (Spring Boot's
 * `management.metrics.distribution.percentiles-histogram`), as Micrometer's explicit buckets or, with
 * the registry's `histogramFlavor` set, as a base-2 exponential histogram; none (the default): count
 * and sum only.
 * Each batch records every COUNT:STATUS:LATENCY_MS group once, then waits --pause-ms (a batch per
 * export step when it equals the step). `close()` publishes once more, so every recorded request is
 * exported before the process exits. Exit status 2 on bad arguments.
 */
public final class MicrometerPeer {
    public static void main(String[] args) throws InterruptedException {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) usage("unexpected argument " + args[i]);
            a.put(args[i].substring(2), args[i + 1]);
        }
        if (args.length % 2 != 0) usage("a flag without its value: " + args[args.length - 1]);
        String url = required(a, "url");
        String resource = required(a, "resource");
        String requests = required(a, "requests");
        int batches = Integer.parseInt(a.getOrDefault("batches", "1"));
        long pauseMs = Long.parseLong(a.getOrDefault("pause-ms", "0"));
        double[] percentiles = a.containsKey("percentiles")
            ? java.util.Arrays.stream(a.get("percentiles").split(",")).mapToDouble(Double::parseDouble).toArray()
            : new double[0];

        String histogram = a.getOrDefault("histogram", "none");
        if (!histogram.equals("none") && !histogram.equals("explicit") && !histogram.equals("exponential")) usage("--histogram expects none, explicit or exponential, got " + histogram);
        Map<String, String> config = new HashMap<>();
        if (histogram.equals("exponential")) config.put("otlp.histogramFlavor", "base2_exponential_bucket_histogram");
        config.put("otlp.url", url);
        config.put("otlp.resourceAttributes", resource);
        config.put("otlp.step", a.getOrDefault("step", "1s"));
        config.put("otlp.aggregationTemporality", a.getOrDefault("temporality", "cumulative"));
        config.put("otlp.baseTimeUnit", a.getOrDefault("base-time-unit", "milliseconds"));
        OtlpConfig otlp = config::get;
        OtlpMeterRegistry registry = new OtlpMeterRegistry(otlp, Clock.SYSTEM);

        String[] groups = requests.split(",");
        for (int b = 0; b < batches; b++) {
            for (String g : groups) {
                String[] f = g.split(":");
                if (f.length != 3) usage("--requests expects COUNT:STATUS:LATENCY_MS, got " + g);
                int count = Integer.parseInt(f[0]);
                int status = Integer.parseInt(f[1]);
                long latencyMs = Long.parseLong(f[2]);
                String outcome = status >= 500 ? "SERVER_ERROR" : status >= 400 ? "CLIENT_ERROR" : status >= 300 ? "REDIRECTION" : "SUCCESS";
                Timer timer = Timer.builder("http.server.requests")
                    .tags("method", "GET", "uri", "/cart", "status", Integer.toString(status), "outcome", outcome, "exception", "none")
                    .publishPercentiles(percentiles)
                    .publishPercentileHistogram(!histogram.equals("none"))
                    .register(registry);
                for (int i = 0; i < count; i++) timer.record(latencyMs, TimeUnit.MILLISECONDS);
            }
            if (pauseMs > 0) Thread.sleep(pauseMs);
        }
        registry.close();
        System.out.println("recorded " + batches + " batches of " + requests);
    }

    private static String required(Map<String, String> a, String key) {
        String v = a.get(key);
        if (v == null || v.isEmpty()) usage("--" + key + " is required");
        return v;
    }

    private static void usage(String message) {
        System.err.println("MicrometerPeer: " + message);
        System.exit(2);
    }
}
