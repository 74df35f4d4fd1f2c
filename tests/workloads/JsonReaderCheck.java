import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/**
 * Feeds the agent's JSON reader one case per stdin line (base64 of the UTF-8 text) and prints,
 * per case, "ok " and the value re-written as ASCII JSON (doubles always with '.' or 'E', so the
 * test can tell them from longs), "iae " and the message, or "other " and whatever else escaped.
 */
public class JsonReaderCheck {
    public static void main(String[] args) throws Exception {
        Method parse = Class.forName("io.offheapdoctor.JsonReader").getDeclaredMethod("parse", String.class);
        parse.setAccessible(true);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            String text = new String(Base64.getDecoder().decode(line.trim()), StandardCharsets.UTF_8);
            try {
                Object v = parse.invoke(null, text);
                StringBuilder b = new StringBuilder("ok ");
                write(b, v);
                out.append(b).append('\n');
            } catch (InvocationTargetException e) {
                Throwable t = e.getCause();
                if (t instanceof IllegalArgumentException) {
                    out.append("iae ").append(t.getMessage().replace('\n', ' ')).append('\n');
                } else {
                    out.append("other ").append(t).append('\n');
                }
            }
        }
        System.out.print(out);
    }

    private static void write(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                string(b, (String) e.getKey());
                b.append(':');
                write(b, e.getValue());
            }
            b.append('}');
        } else if (v instanceof List) {
            b.append('[');
            boolean first = true;
            for (Object o : (List<?>) v) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(b, o);
            }
            b.append(']');
        } else if (v instanceof String) {
            string(b, (String) v);
        } else if (v instanceof Long || v instanceof Boolean) {
            b.append(v);
        } else if (v instanceof Double) {
            double d = (Double) v;
            b.append(Double.isInfinite(d) ? (d > 0 ? "1e999" : "-1e999") : Double.toString(d));
        } else {
            b.append("\"unexpected type ").append(v.getClass().getName()).append('"');
        }
    }

    private static void string(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        b.append('"');
    }
}
