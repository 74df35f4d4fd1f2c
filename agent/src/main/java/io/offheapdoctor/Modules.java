package io.offheapdoctor;

import java.lang.instrument.Instrumentation;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * Opens JDK packages to the agent's module for deep reflection, through the agent's
 * {@code Instrumentation.redefineModule} (JDK 9+; called reflectively: the agent is compiled for
 * Java 8). Every package opened here is opened to the application's class-path code too (the agent
 * jar shares the system loader's unnamed module): callers open no more than they need.
 */
final class Modules {
    private Modules() {}

    /**
     * Opens {@code packages} of the module holding {@code inTarget} to the agent's module.
     * Throws ClassNotFoundException on JDK 8 (no modules: setAccessible suffices there).
     */
    static void open(Instrumentation inst, Class<?> inTarget, String... packages) throws Exception {
        Class<?> moduleClass = Class.forName("java.lang.Module");
        Method getModule = Class.class.getMethod("getModule");
        Object target = getModule.invoke(inTarget);
        Object self = getModule.invoke(Modules.class);
        Method isOpen = moduleClass.getMethod("isOpen", String.class, moduleClass);
        Map<String, Set<Object>> opens = new HashMap<String, Set<Object>>();
        for (String p : packages) {
            // JDK 9 to 16 report packages open to everyone under --illegal-access=permit, yet
            // warn on each use: with an Instrumentation, open them properly regardless.
            if (inst != null || !(Boolean) isOpen.invoke(target, p, self)) {
                opens.put(p, Collections.singleton(self));
            }
        }
        if (opens.isEmpty()) {
            return;
        }
        String module = String.valueOf(moduleClass.getMethod("getName").invoke(target));
        if (inst == null) {
            throw new IllegalStateException("no Instrumentation to open " + opens.keySet()
                    + " (run as an agent, or add --add-opens " + module + "/<package>=ALL-UNNAMED)");
        }
        Method redefine = Instrumentation.class.getMethod("redefineModule", moduleClass, Set.class, Map.class,
                Map.class, Set.class, Map.class);
        try {
            redefine.invoke(inst, target, new HashSet<Object>(), new HashMap<String, Set<Object>>(), opens,
                    new HashSet<Class<?>>(), new HashMap<Class<?>, Object>());
        } catch (InvocationTargetException e) {
            throw new IllegalStateException("Instrumentation.redefineModule cannot open " + opens.keySet()
                    + " of " + module + " (" + ZipCensus.describe(e) + ")", e.getCause());
        }
    }
}
